// `netserva-mail init`: the CA, the controller's own certificate, the config and the database.
// Idempotent: whatever exists is kept, and the report says what was created.
import { existsSync, mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { createCertificateAuthority, issueCertificate } from "../../common/pki/ca.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { writePrivateFile, writePublicFile } from "../../common/pki/files.ts";
import type { Database } from "../db/open-database.ts";
import { defaultConfig } from "./controller-config.ts";
import type { ControllerConfig } from "./controller-config.ts";
import type { HomePaths } from "./home-paths.ts";
import { recordCertificate } from "../pki/certificate-records.ts";

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
      const { readFileSync } = await import("node:fs");
      const name = overrides.name ?? defaultConfig.name;
      const { keyPem, csrPem } = await createKeyAndCsr({ commonName: name });
      const issued = await issueCertificate({
        caKeyPem: readFileSync(paths.caKey, "utf8"),
        caCertPem: readFileSync(paths.caCert, "utf8"),
        csrPem,
        role: "controller",
        identity: name,
        dnsNames: ["localhost", hostname()],
        ipAddresses: ["127.0.0.1", "::1"],
        validSeconds: 365 * 24 * 3600,
      });
      await writePrivateFile(paths.key, keyPem);
      await writePublicFile(paths.cert, issued.certPem);
      await recordCertificate(db.em(), { pem: issued.certPem, vnodeId: null });
      created.push("controller certificate");
    }
    if (created.length === 0) kept.push("database");
    else created.push("database");
  } finally {
    await db.close();
  }
  return { created, kept };
}
