// After a mail mutation commits, bring the vnode to its new generation at once: incremental
// changes to the agent, or the whole compiled state when the agent asks for it. An unreachable
// vnode is not an error for the mutation (the database holds the truth; the reconciler catches
// up), but the operator is told.
import type { HomePaths } from "../home/home-paths.ts";
import type { Database } from "../db/open-database.ts";
import type { MutationResult } from "../mail/mail-api.ts";

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

/** Filled in by the real-mail issue; until then nothing is sent and the reason says so. */
export async function pushMutation(_ctx: PushContext, result: MutationResult<unknown>): Promise<PushOutcome> {
  if (result.dryRun || result.changes.length === 0) return { pushed: false, reason: "nothing to send", diff: [] };
  return { pushed: false, reason: `vnode ${result.vnode}: agent push not wired yet; generation ${result.generation} waits for the reconciler`, diff: [] };
}
