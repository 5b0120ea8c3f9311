// Fleet membership: add a vnode (and its one-time join token), list, revoke.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError, notFound } from "../../common/errors.ts";
import { parseHostPort, parseVnodeName } from "../../common/validation/index.ts";
import { createJoinToken, formatJoinToken, hashTokenSecret } from "../../common/pki/join-token.ts";
import { caPin } from "../../common/pki/pin.ts";
import { Certificate, JoinToken, Vnode } from "../db/entities/index.ts";

export function checkVnodeName(name: string): string {
  return parseVnodeName(name, "vnode");
}

export function checkAddress(address: string, field = "address"): string {
  parseHostPort(address, field);
  return address;
}

export async function findVnode(em: SqlEntityManager, name: string): Promise<Vnode> {
  const vnode = await em.findOne(Vnode, { name: checkVnodeName(name) });
  if (!vnode) throw notFound(`vnode '${name}' not found: see \`netserva-mail status\``);
  return vnode;
}

export interface JoinTokenIssue {
  vnode: Vnode;
  token: string;
  expiresAt: Date;
}

export async function issueJoinToken(
  em: SqlEntityManager,
  vnode: Vnode,
  caCertPem: string,
  ttlSeconds: number,
): Promise<JoinTokenIssue> {
  const { id, secret } = createJoinToken();
  const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
  const pin = caPin(caCertPem);
  em.create(JoinToken, { tokenId: id, secretHash: hashTokenSecret(secret), vnodeId: vnode.id, expiresAt, caPin: pin });
  await em.flush();
  return { vnode, token: formatJoinToken({ id, secret, caPin: pin }), expiresAt };
}

export async function addVnode(
  em: SqlEntityManager,
  input: { name: string; address: string; caCertPem: string; ttlSeconds: number },
): Promise<JoinTokenIssue> {
  checkVnodeName(input.name);
  checkAddress(input.address);
  if (await em.findOne(Vnode, { name: input.name })) {
    throw new NetservaError(
      "already_exists",
      `vnode '${input.name}' already exists: use \`netserva-mail vnode token ${input.name}\` for a new join token`,
    );
  }
  const vnode = em.create(Vnode, { name: input.name, address: input.address, status: "pending" });
  await em.flush();
  return issueJoinToken(em, vnode, input.caCertPem, input.ttlSeconds);
}

/** Revokes every live certificate of the vnode; the fleet drops its connection at once. */
export async function revokeVnode(em: SqlEntityManager, name: string): Promise<{ vnode: Vnode; serials: string[] }> {
  const vnode = await findVnode(em, name);
  const certificates = await em.find(Certificate, { vnodeId: vnode.id, revokedAt: null });
  const now = new Date();
  for (const certificate of certificates) certificate.revokedAt = now;
  vnode.status = "revoked";
  await em.nativeUpdate(JoinToken, { vnodeId: vnode.id, usedAt: null }, { usedAt: now });
  await em.flush();
  return { vnode, serials: certificates.map((c) => c.serial) };
}
