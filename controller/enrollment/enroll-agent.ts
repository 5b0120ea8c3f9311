// The enrollment rules: a join token is used once, before it expires, by the vnode it was made
// for; the CA signs the agent's CSR with the vnode's name and the agent role, whatever the CSR asks.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError, invalid } from "../../common/errors.ts";
import { issueCertificate } from "../../common/pki/ca.ts";
import { verifyTokenSecret } from "../../common/pki/join-token.ts";
import { JoinToken, Vnode } from "../db/entities/index.ts";
import { recordCertificate } from "../pki/certificate-records.ts";

export interface CaMaterial {
  caKeyPem: string;
  caCertPem: string;
}

const TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16,64})$/;

/** The names an agent certificate carries: the vnode, and the address the controller dials. */
function agentNames(vnode: Vnode): { dnsNames: string[]; ipAddresses: string[] } {
  const raw = vnode.address.slice(0, vnode.address.lastIndexOf(":"));
  const host = raw.startsWith("[") ? raw.slice(1, -1) : raw;
  const isIp = /^[0-9.]+$/.test(host) || host.includes(":");
  return isIp ? { dnsNames: [vnode.name], ipAddresses: [host] } : { dnsNames: [vnode.name, host], ipAddresses: [] };
}

export async function enrollAgent(em: SqlEntityManager, ca: CaMaterial, input: { token: string; csrPem: string; validSeconds: number }): Promise<{ vnode: Vnode; certPem: string }> {
  const match = TOKEN.exec(input.token);
  if (!match) throw invalid("token", "malformed join token: expected <id>.<secret> from `netserva-mail vnode add`");
  const [, tokenId, secret] = match as unknown as [string, string, string];
  const refused = new NetservaError("unauthenticated", "token: unknown, used or expired join token: ask the operator for a new one (`netserva-mail vnode token NAME`)", { field: "token" });
  const row = await em.findOne(JoinToken, { tokenId });
  if (!row || !verifyTokenSecret(secret, row.secretHash)) throw refused;
  if (row.usedAt !== null && row.usedAt !== undefined) throw refused;
  if (row.expiresAt.getTime() <= Date.now()) throw refused;
  // Claim the token atomically: of two racing enrollments only one updates the row.
  const claimed = await em.nativeUpdate(JoinToken, { id: row.id, usedAt: null }, { usedAt: new Date() });
  if (claimed !== 1) throw refused;

  const vnode = await em.findOneOrFail(Vnode, { id: row.vnodeId });
  if (vnode.status === "revoked") throw new NetservaError("permission_denied", `vnode '${vnode.name}' is revoked`);
  const issued = await issueCertificate({
    caKeyPem: ca.caKeyPem,
    caCertPem: ca.caCertPem,
    csrPem: input.csrPem,
    role: "agent",
    identity: vnode.name,
    ...agentNames(vnode),
    validSeconds: input.validSeconds,
  });
  vnode.status = "enrolled";
  await em.flush();
  await recordCertificate(em, { pem: issued.certPem, vnodeId: vnode.id });
  return { vnode, certPem: issued.certPem };
}

/** Renewal: an enrolled agent presents its current (valid, unrevoked) certificate and a new CSR. */
export async function renewAgent(em: SqlEntityManager, ca: CaMaterial, input: { vnodeName: string; serial: string; csrPem: string; validSeconds: number }): Promise<string> {
  const vnode = await em.findOne(Vnode, { name: input.vnodeName });
  if (!vnode || vnode.status !== "enrolled") throw new NetservaError("permission_denied", `vnode '${input.vnodeName}' is not enrolled`);
  const issued = await issueCertificate({
    caKeyPem: ca.caKeyPem,
    caCertPem: ca.caCertPem,
    csrPem: input.csrPem,
    role: "agent",
    identity: vnode.name,
    ...agentNames(vnode),
    validSeconds: input.validSeconds,
  });
  await recordCertificate(em, { pem: issued.certPem, vnodeId: vnode.id });
  return issued.certPem;
}
