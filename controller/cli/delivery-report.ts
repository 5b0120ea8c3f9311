// How a delivery to a vnode is told to the operator: `live on <vnode> at generation N` on stdout,
// `not pushed: <reason>` on stderr (the change is stored either way), or a dry run's diff.
import type { DeliverOutcome } from "../fleet/deliver.ts";
import type { CliContext } from "./cli-context.ts";

export function reportDelivery(
  ctx: CliContext,
  vnode: string,
  outcome: DeliverOutcome,
  options: { dryRun?: boolean; showDiff?: boolean } = {},
): void {
  if (options.dryRun) {
    if (outcome.reason) ctx.io.err(`no diff from the vnode: ${outcome.reason}\n`);
    else
      ctx.io.out(
        outcome.diff.length
          ? `on ${vnode} it would change:\n${outcome.diff.map((l) => `  ${l}\n`).join("")}`
          : `on ${vnode} nothing would change\n`,
      );
    return;
  }
  if (!outcome.pushed) {
    ctx.io.err(`not pushed: ${outcome.reason ?? "unknown reason"}\n`);
    return;
  }
  ctx.io.out(`live on ${vnode} at generation ${outcome.appliedGeneration ?? outcome.generation}\n`);
  if (options.showDiff) for (const line of outcome.diff) ctx.io.out(`  ${line}\n`);
}
