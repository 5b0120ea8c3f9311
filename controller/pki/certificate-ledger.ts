// `cert list` and `cert revoke`: every certificate the CA issued (agent, controller, monitor), by
// serial. A revoked serial reaches every agent with the fleet's next revocation push, which ends
// open connections made with it (the gRPC channel and /metrics alike).
import type { SqlEntityManager } from "@mikro-orm/sql";
import { invalid, NetservaError, notFound } from "../../common/errors.ts";
import { normalizeSerial } from "../../common/identity/peer.ts";
import { Certificate } from "../db/entities/index.ts";

export type CertificateState = "valid" | "expired" | "revoked";

export interface CertificateRow {
  serial: string;
  role: string;
  identity: string;
  state: CertificateState;
  notBefore: string;
  notAfter: string;
  revokedAt: string | null;
}

function stateOf(row: Certificate, now: number): CertificateState {
  if (row.revokedAt) return "revoked";
  return row.notAfter.getTime() <= now ? "expired" : "valid";
}

export async function listCertificates(
  em: SqlEntityManager,
  filter: { role?: string; all?: boolean } = {},
  now = Date.now(),
): Promise<CertificateRow[]> {
  const where: Record<string, unknown> = {};
  if (filter.role !== undefined) where["role"] = filter.role;
  // Expired certificates are refused by TLS anyway: shown only with --all.
  if (!filter.all) where["notAfter"] = { $gt: new Date(now) };
  const rows = await em.find(Certificate, where, { orderBy: { role: "asc", identity: "asc", notAfter: "asc" } });
  return rows.map((row) => toRow(row, now));
}

function toRow(row: Certificate, now: number): CertificateRow {
  return {
    serial: row.serial,
    role: row.role,
    identity: row.identity,
    state: stateOf(row, now),
    notBefore: row.notBefore.toISOString(),
    notAfter: row.notAfter.toISOString(),
    revokedAt: row.revokedAt ? row.revokedAt.toISOString() : null,
  };
}

/** Marks one certificate revoked. Revoking an already revoked one changes nothing. */
export async function revokeCertificate(
  em: SqlEntityManager,
  serialText: string,
  options: { inUse?: readonly string[] } = {},
): Promise<{ row: CertificateRow; changed: boolean }> {
  if (typeof serialText !== "string" || !/^[0-9a-fA-F:]{1,96}$/.test(serialText.trim()))
    throw invalid("serial", "must be a hex serial number as `cert list` shows it");
  const serial = normalizeSerial(serialText);
  const row = await em.findOne(Certificate, { serial });
  if (!row) throw notFound(`certificate ${serial} not found: \`netserva-mail cert list --all\` shows every serial`);
  if (options.inUse?.includes(serial) && !row.revokedAt)
    throw new NetservaError(
      "failed_precondition",
      `certificate ${serial} is the one the controller presents to agents: revoke it once the controller has a new certificate`,
      { field: "serial" },
    );
  const changed = !row.revokedAt;
  if (changed) {
    row.revokedAt = new Date();
    await em.flush();
  }
  return { row: toRow(row, Date.now()), changed };
}
