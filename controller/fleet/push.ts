// After a mail mutation commits, bring the vnode to its new generation at once: incremental
// changes to the agent, or the whole compiled state when the agent asks for it. An unreachable
// vnode is not an error for the mutation (the database holds the truth; the reconciler in
// `serve` catches up), but the operator is told.
import { NetservaError } from "../../common/errors.ts";
import type { Database } from "../db/open-database.ts";
import { Vnode } from "../db/entities/index.ts";
import type { HomePaths } from "../home/home-paths.ts";
import type { MutationResult } from "../mail/mail-api.ts";
import { revokedSerials } from "../pki/certificate-records.ts";
import { agentClientFor } from "./agent-for-vnode.ts";
import { applyToVnode } from "./apply-to-vnode.ts";
import { compileContextFor } from "../compiler/compile-context.ts";

export interface PushOutcome {
  pushed: boolean;
  /** Generation the agent reports after the push (when pushed). */
  appliedGeneration?: number;
  /** Why it was not pushed, for the operator. */
  reason?: string;
  /** Agent's diff lines (dry run or applied). */
  diff: string[];
}

export interface PushContext {
  paths: HomePaths;
  db: Database;
  actor: string;
}

export async function pushMutation(ctx: PushContext, result: MutationResult<unknown>): Promise<PushOutcome> {
  if (!result.dryRun && result.changes.length === 0) return { pushed: false, reason: "nothing changed", diff: [] };
  const em = ctx.db.em();
  const vnode = await em.findOne(Vnode, { name: result.vnode });
  if (!vnode) return { pushed: false, reason: `vnode ${result.vnode} not found`, diff: [] };
  if (vnode.status !== "enrolled")
    return {
      pushed: false,
      reason: `vnode ${result.vnode} is ${vnode.status}: generation ${result.generation} is applied once its agent is enrolled`,
      diff: [],
    };
  const revoked = new Set(await revokedSerials(em));
  // Connected but busy (a whole 100,000-mailbox state ahead in the queue) is not unreachable:
  // a refused or dead connection still fails at once.
  const client = agentClientFor(ctx.paths, vnode, (serial) => revoked.has(serial), 30_000);
  try {
    const response = await applyToVnode({
      em,
      client,
      vnode,
      actor: ctx.actor,
      compile: compileContextFor(ctx.paths),
      changes: { generation: result.generation, list: result.changes },
      dryRun: result.dryRun,
    });
    return { pushed: !result.dryRun, appliedGeneration: Number(response.appliedGeneration), diff: response.diff };
  } catch (reason) {
    return {
      pushed: false,
      reason: `vnode ${result.vnode} unreachable (${NetservaError.from(reason).message}); the reconciler applies generation ${result.generation} when it is back`,
      diff: [],
    };
  } finally {
    client.close();
  }
}
