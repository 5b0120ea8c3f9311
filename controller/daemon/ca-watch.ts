// Notices a CA rotation step (`ca rotate`, `ca retire-old`) made by a CLI in this process or any
// other: the CA rows in the database are the signal, the files in the home the material.
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import { CertificateAuthority } from "../db/entities/index.ts";

export interface CaWatch {
  /** Compares with the last state seen; calls onChange when it moved. */
  check(): Promise<void>;
  /** No more checks; resolves once the one under way (if any) has ended. */
  stop(): Promise<void>;
}

async function caKey(db: Database): Promise<string> {
  const rows = await db.em().find(CertificateAuthority, {}, { orderBy: { id: "asc" }, fields: ["pin", "state"] });
  return rows.map((r) => `${r.pin}:${r.state}`).join(",");
}

export async function watchCaChanges(options: {
  db: Database;
  log: Logger;
  intervalMs?: number;
  onChange(): Promise<void>;
}): Promise<CaWatch> {
  let seen = await caKey(options.db);
  let running: Promise<void> | undefined;
  const check = async (): Promise<void> => {
    const key = await caKey(options.db);
    if (key === seen) return;
    await options.onChange();
    seen = key;
  };
  const timer = setInterval(() => {
    running ??= check()
      .catch((error: unknown) => options.log.warn("CA change not applied; retrying", { error: String(error) }))
      .finally(() => (running = undefined));
  }, options.intervalMs ?? 2000);
  timer.unref();
  return {
    check: () => (running ??= check().finally(() => (running = undefined))),
    async stop() {
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
