// Writes the command log: who ran what against which vnode, the result and how long it took.
import { randomUUID } from "node:crypto";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { CommandLog } from "../db/entities/index.ts";
import { safeText, safeValue } from "../../common/log-safe.ts";

export interface AuditEntry {
  actor: string;
  command: string;
  vnodeName?: string | null;
  requestId?: string;
  generation?: number | null;
  args?: Record<string, unknown>;
}

/** Runs `work` and records its outcome; refusals and failures are recorded too, then rethrown. */
export async function audited<T>(
  em: SqlEntityManager,
  entry: AuditEntry,
  work: (requestId: string) => Promise<T>,
): Promise<T> {
  const requestId = entry.requestId ?? randomUUID();
  const started = performance.now();
  const write = async (result: "ok" | "refused" | "error", error: string | null): Promise<void> => {
    const log = em.fork();
    log.create(CommandLog, {
      actor: entry.actor,
      command: entry.command,
      vnodeName: entry.vnodeName ? safeText(entry.vnodeName) : null,
      requestId,
      generation: entry.generation ?? null,
      result,
      error: error === null ? null : safeText(error),
      durationMs: performance.now() - started,
      args: entry.args ? (safeValue(entry.args) as Record<string, unknown>) : null,
    });
    await log.flush();
  };
  try {
    const value = await work(requestId);
    await write("ok", null);
    return value;
  } catch (reason) {
    const error = NetservaError.from(reason);
    const refused = ["invalid_argument", "not_found", "already_exists", "failed_precondition"].includes(error.code);
    await write(refused ? "refused" : "error", error.message).catch(() => undefined);
    throw error;
  }
}
