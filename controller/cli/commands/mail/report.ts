// How a mutation is reported: what changed (or would change, on a dry run) on stdout, then the
// push to the vnode. A failed push does not fail the command: the database holds the truth and
// the reconciler catches up; the operator is told on stderr.
import type { MutationResult } from "../../../mail/mail-api.ts";
import type { CliContext } from "../../cli-context.ts";
import type { MailSession } from "../../mail-context.ts";

/**
 * `what` reads as a past-tense clause ("added mailbox a@example.com"); `details` are printed
 * after it on a real run (a new password: before the push, so a slow push cannot lose it).
 */
export async function reportMutation(
  ctx: CliContext,
  session: MailSession,
  result: MutationResult<unknown>,
  what: string,
  details: string[] = [],
): Promise<void> {
  const changes = `${result.changes.length} lookup change${result.changes.length === 1 ? "" : "s"}`;
  if (result.dryRun) {
    ctx.io.out(`dry run: would have ${what} on ${result.vnode} (${changes}); nothing was changed\n`);
    // The vnode's own dry run shows the lookup rows and files it would change.
    await session.push(result);
    return;
  }
  ctx.io.out(`${what} on ${result.vnode} (generation ${result.generation}, ${changes})\n`);
  for (const line of details) ctx.io.out(`${line}\n`);
  await session.push(result);
}
