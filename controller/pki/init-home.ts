// `netserva-mail init`: the CA, the controller's own certificate (one key/certificate unit, see
// controller/pki/controller-certificate.ts), the config and the database.
// Idempotent: whatever exists is kept, and the report says what was created. It lives with the
// PKI it mostly sets up; controller/home stays the floor both use (paths and config).
import { existsSync, mkdirSync } from "node:fs";
import { createCertificateAuthority } from "../../common/pki/ca.ts";
import { writePrivateFile, writePublicFile } from "../../common/pki/files.ts";
import type { Database } from "../db/open-database.ts";
import { defaultConfig, readControllerConfig } from "../home/controller-config.ts";
import type { ControllerConfig } from "../home/controller-config.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { defaultControllerNames, issueControllerIdentity } from "./controller-certificate.ts";

export interface InitResult {
  created: string[];
  kept: string[];
}

export async function initHome(
  paths: HomePaths,
  openDb: () => Promise<Database>,
  overrides: Partial<ControllerConfig> = {},
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
    if (existsSync(paths.caKey) && existsSync(paths.caCert)) kept.push("ca");
    else {
      const ca = await createCertificateAuthority({ commonName: "netserva-mail CA", validDays: 3650 });
      await writePrivateFile(paths.caKey, ca.keyPem);
      await writePublicFile(paths.caCert, ca.certPem);
      created.push("ca");
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
