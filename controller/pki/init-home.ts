// `netserva-mail init`: the CA, the controller's own certificate (one key/certificate unit, see
// controller/pki/controller-certificate.ts), the config and the database.
// Idempotent: whatever exists is kept, and the report says what was created. On PostgreSQL with a
// key-encryption key (ca-seal.ts) the CA comes from the database when another controller put it
// there (this one joins with the KEK and DATABASE_URL only), or is put there by this one. It lives with the
// PKI it mostly sets up; controller/home stays the floor both use (paths and config).
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { createCertificateAuthority } from "../../common/pki/ca.ts";
import { writePrivateFile, writePublicFile } from "../../common/pki/files.ts";
import type { Database } from "../db/open-database.ts";
import { defaultConfig, readControllerConfig } from "../home/controller-config.ts";
import type { ControllerConfig } from "../home/controller-config.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { defaultControllerNames, issueControllerIdentity } from "./controller-certificate.ts";
import type { Kek } from "./ca-seal.ts";
import { caKeyInDatabase, materializeCa, publishCa } from "./ca-store.ts";

/** Any constant: the advisory lock two `init`s on one new database take to publish one CA. */
const PUBLISH_LOCK = 7_445_016;

export interface InitResult {
  created: string[];
  kept: string[];
}

export async function initHome(
  paths: HomePaths,
  openDb: () => Promise<Database>,
  overrides: Partial<ControllerConfig> = {},
  kek?: Kek,
): Promise<InitResult> {
  const created: string[] = [];
  const kept: string[] = [];
  mkdirSync(paths.root, { recursive: true, mode: 0o700 });
  mkdirSync(`${paths.root}/ca`, { recursive: true, mode: 0o700 });

  if (existsSync(paths.config)) kept.push("config");
  else {
    await writePublicFile(paths.config, JSON.stringify({ ...defaultConfig, ...overrides }, null, 2) + "\n");
    created.push("config");
  }

  const db = await openDb();
  try {
    const shared = db.kind === "postgresql" ? await materializeCa(db.em().fork(), paths, kek) : "not kept";
    if (shared === "written") created.push("ca (from the database)");
    else if (existsSync(paths.caKey) && existsSync(paths.caCert)) kept.push("ca");
    else {
      const ca = await createCertificateAuthority({ commonName: "netserva-mail CA", validDays: 3650 });
      await writePrivateFile(paths.caKey, ca.keyPem);
      await writePublicFile(paths.caCert, ca.certPem);
      created.push("ca");
    }
    if (shared === "not kept" && kek && db.kind === "postgresql") {
      // The first controller given a KEK puts the CA in the database. Two `init`s at once on a
      // new database: the one that publishes second takes the first one's CA instead of its own.
      const first = await db
        .em()
        .fork()
        .transactional(async (tx) => {
          await tx.execute(`select pg_advisory_xact_lock(${PUBLISH_LOCK})`);
          if (await caKeyInDatabase(tx)) return false;
          await publishCa(tx, paths, kek);
          await tx.flush();
          return true;
        });
      if (first) created.push("sealed CA key in the database");
      else {
        // Ours was made a moment ago and signed nothing yet: the database's wins.
        if (created.includes("ca")) for (const file of [paths.caKey, paths.caCert]) rmSync(file, { force: true });
        await materializeCa(db.em().fork(), paths, kek);
        created.push("ca (from the database)");
      }
    }
    if (existsSync(paths.key) && existsSync(paths.cert)) kept.push("controller certificate");
    else {
      const config = readControllerConfig(paths.config);
      await issueControllerIdentity(db.em(), paths, {
        validSeconds: config.controllerCertificateSeconds,
        names: defaultControllerNames(overrides.name ?? config.name),
      });
      created.push("controller certificate");
    }
    if (created.length === 0) kept.push("database");
    else created.push("database");
  } finally {
    await db.close();
  }
  return { created, kept };
}
