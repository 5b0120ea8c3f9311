// The CA's ledger in the database: every issued certificate by serial, and revocation.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { normalizeSerial } from "../../common/identity/peer.ts";
import { Certificate } from "../db/entities/index.ts";

export async function recordCertificate(
  em: SqlEntityManager,
  input: { pem: string; vnodeId: number | null },
): Promise<Certificate> {
  const info = inspectCertificate(input.pem);
  const row = em.create(Certificate, {
    serial: normalizeSerial(info.serialHex),
    role: info.role ?? "unknown",
    identity: info.identity ?? info.subjectCN ?? "unknown",
    vnodeId: input.vnodeId,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    pem: input.pem,
  });
  await em.flush();
  return row;
}

/** Serials of every revoked certificate that has not yet expired (expired ones fail TLS anyway). */
export async function revokedSerials(em: SqlEntityManager): Promise<string[]> {
  const rows = await em.find(
    Certificate,
    { revokedAt: { $ne: null }, notAfter: { $gt: new Date() } },
    { fields: ["serial"] },
  );
  return rows.map((row) => row.serial);
}
