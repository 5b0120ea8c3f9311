// The command log row of one mail mutation. Written with the change's own entity manager, so
// inside the change's transaction when it succeeds (change and record commit or vanish
// together); refusals and dry runs are written after the rollback.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { CommandLog } from "../db/entities/index.ts";
import { safeText, safeValue } from "../../common/log-safe.ts";

export interface MutationLogEntry {
  actor: string;
  command: string;
  vnodeName: string | null;
  requestId: string;
  generation: number | null;
  result: "ok" | "refused" | "error";
  error: string | null;
  startedAt: number;
  args: Record<string, unknown>;
}

export async function writeMutationLog(em: SqlEntityManager, entry: MutationLogEntry): Promise<void> {
  await em.insert(CommandLog, {
    at: new Date(),
    actor: entry.actor,
    command: entry.command,
    vnodeName: entry.vnodeName === null ? null : safeText(entry.vnodeName),
    requestId: entry.requestId,
    generation: entry.generation,
    result: entry.result,
    error: entry.error === null ? null : safeText(entry.error),
    durationMs: performance.now() - entry.startedAt,
    args: safeValue(entry.args) as Record<string, unknown>,
  });
}

/** Refusals are expected outcomes (exit 1, 3, 4); anything else is an error worth a look. */
export function resultOf(code: string): "refused" | "error" {
  return ["invalid_argument", "not_found", "already_exists", "failed_precondition"].includes(code)
    ? "refused"
    : "error";
}
