// The enrollment rules: a join token is used once, before it expires, by the vnode it was made
// for; the CA signs the agent's CSR with the vnode's name and the agent role, whatever the CSR asks.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { issueCertificate } from "../../common/pki/ca.ts";
import { readCsr } from "../../common/pki/csr.ts";
import type { VerifiedCsr } from "../../common/pki/csr.ts";
import { parseTokenCredential, verifyTokenSecret } from "../../common/pki/join-token.ts";
import { CertificateAuthority, JoinToken, Vnode } from "../db/entities/index.ts";
import { readTrustBundle } from "../../common/pki/trust-bundle.ts";
import { recordCertificate } from "../pki/certificate-records.ts";

export interface CaMaterial {
  caKeyPem: string;
  caCertPem: string;
  /** Every CA peers are verified against (old and new during a rotation); sent to agents. */
  trustPem: string;
}

/** The CA a join token pins: its own record, or (made before tokens recorded it) the first CA. */
async function tokenPin(em: SqlEntityManager, row: JoinToken): Promise<string | undefined> {
  if (row.caPin) return row.caPin;
  const first = await em.findOne(CertificateAuthority, {}, { orderBy: { createdAt: "asc", id: "asc" } });
  return first?.pin;
}

/** The names an agent certificate carries: the vnode, and the address the controller dials. */
function agentNames(vnode: Vnode): { dnsNames: string[]; ipAddresses: string[] } {
  const raw = vnode.address.slice(0, vnode.address.lastIndexOf(":"));
  const host = raw.startsWith("[") ? raw.slice(1, -1) : raw;
  const isIp = /^[0-9.]+$/.test(host) || host.includes(":");
  return isIp ? { dnsNames: [vnode.name], ipAddresses: [host] } : { dnsNames: [vnode.name, host], ipAddresses: [] };
}

/** Signs the requester's proven key as this vnode's agent and records the certificate. */
async function issueAgentCertificate(
  em: SqlEntityManager,
  ca: CaMaterial,
  vnode: Vnode,
  csr: VerifiedCsr,
  validSeconds: number,
): Promise<string> {
  const issued = await issueCertificate({
    caKeyPem: ca.caKeyPem,
    caCertPem: ca.caCertPem,
    publicKeyPem: csr.key.export({ type: "spki", format: "pem" }).toString(),
    role: "agent",
    identity: vnode.name,
    ...agentNames(vnode),
    validSeconds,
  });
  await recordCertificate(em, { pem: issued.certPem, vnodeId: vnode.id });
  return issued.certPem;
}

export async function enrollAgent(
  em: SqlEntityManager,
  ca: CaMaterial,
  input: { token: string; csrPem: string; validSeconds: number },
): Promise<{ vnode: Vnode; certPem: string }> {
  const { id: tokenId, secret } = parseTokenCredential(input.token);
  const refused = new NetservaError(
    "unauthenticated",
    "token: unknown, used or expired join token: ask the operator for a new one (`netserva-mail vnode token NAME`)",
    { field: "token" },
  );
  const row = await em.findOne(JoinToken, { tokenId });
  if (!row || !verifyTokenSecret(secret, row.secretHash)) throw refused;
  if (row.usedAt !== null && row.usedAt !== undefined) throw refused;
  if (row.expiresAt.getTime() <= Date.now()) throw refused;
  // A token pins the CA that signed when it was made; once that CA is retired no agent could
  // trust what it pinned. Said plainly, so the operator knows what to do.
  const pin = await tokenPin(em, row);
  if (pin !== undefined && !readTrustBundle(ca.trustPem, "trust").some((trusted) => trusted.pin === pin)) {
    const vnode = await em.findOne(Vnode, { id: row.vnodeId });
    throw new NetservaError(
      "failed_precondition",
      `token: join token was issued before the CA rotation; issue a new one with \`netserva-mail vnode token ${vnode?.name ?? "NAME"}\``,
      { field: "token" },
    );
  }
  // A malformed request is refused before the token is claimed: it does not burn the token.
  const csr = readCsr(input.csrPem);
  // Claim the token atomically: of two racing enrollments only one updates the row.
  const claimed = await em.nativeUpdate(JoinToken, { id: row.id, usedAt: null }, { usedAt: new Date() });
  if (claimed !== 1) throw refused;

  const vnode = await em.findOneOrFail(Vnode, { id: row.vnodeId });
  if (vnode.status === "revoked") throw new NetservaError("permission_denied", `vnode '${vnode.name}' is revoked`);
  const certPem = await issueAgentCertificate(em, ca, vnode, csr, input.validSeconds);
  vnode.status = "enrolled";
  await em.flush();
  return { vnode, certPem };
}

/** Renewal: an enrolled agent presents its current (valid, unrevoked) certificate and a new CSR. */
export async function renewAgent(
  em: SqlEntityManager,
  ca: CaMaterial,
  input: { vnodeName: string; serial: string; csrPem: string; validSeconds: number },
): Promise<string> {
  const vnode = await em.findOne(Vnode, { name: input.vnodeName });
  if (!vnode || vnode.status !== "enrolled")
    throw new NetservaError("permission_denied", `vnode '${input.vnodeName}' is not enrolled`);
  return issueAgentCertificate(em, ca, vnode, readCsr(input.csrPem), input.validSeconds);
}
