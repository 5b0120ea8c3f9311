// A monitor-role certificate for a scraper such as Prometheus: the agents' /metrics accepts it,
// AgentService refuses it (only the controller role may command). Key made here, 0600.
import { join } from "node:path";
import { mkdirSync } from "node:fs";
import { issueCertificate } from "../../common/pki/ca.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { writePrivateFile, writePublicFile } from "../../common/pki/files.ts";
import { checkIdentity } from "../../common/pki/roles.ts";
import type { SqlEntityManager } from "@mikro-orm/sql";
import type { HomePaths } from "../home/home-paths.ts";
import { recordCertificate } from "./certificate-records.ts";
import { readCaFiles, readSigningCa, withChain } from "./ca-files.ts";

export interface MonitorCertificate {
  certFile: string;
  keyFile: string;
  caFile: string;
  notAfter: Date;
  serialHex: string;
}

export async function issueMonitorCertificate(
  em: SqlEntityManager,
  paths: HomePaths,
  o: { name: string; outDir: string; validDays: number },
): Promise<MonitorCertificate> {
  const name = checkIdentity(o.name, "name");
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: name });
  const issued = issueCertificate({
    ...readSigningCa(paths),
    csrPem,
    role: "monitor",
    identity: name,
    validSeconds: o.validDays * 86_400,
  });
  mkdirSync(o.outDir, { recursive: true, mode: 0o700 });
  const out = {
    certFile: join(o.outDir, `${name}.crt`),
    keyFile: join(o.outDir, `${name}.key`),
    caFile: join(o.outDir, "ca.crt"),
  };
  await writePrivateFile(out.keyFile, keyPem);
  // With the chain (an agent that trusts only the old CA during a rotation still accepts it) and
  // every CA the agents' certificates may come from.
  const ca = readCaFiles(paths);
  await writePublicFile(out.certFile, withChain(issued.certPem, ca.chainPem));
  await writePublicFile(out.caFile, ca.trustPem);
  await recordCertificate(em, { pem: issued.certPem, vnodeId: null });
  return { ...out, notAfter: issued.notAfter, serialHex: issued.serialHex };
}
