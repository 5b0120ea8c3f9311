// Per-vnode mail settings (host name, listen addresses, filters) and the operator's own mail TLS
// certificate. Each change bumps the vnode's generation in SQL in the same transaction as the row.
import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import { isIP } from "node:net";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError, invalid } from "../../common/errors.ts";
import { parseDomain } from "../../common/validation/index.ts";
import { parseHostPort } from "../../common/validation/host-port.ts";
import { AcmeCertificate, AcmeVnodePolicy, MailCertificate, MailTls } from "../db/entities/index.ts";
import type { Vnode } from "../db/entities/index.ts";
import { findVnode } from "./vnode-service.ts";
import { bumpGeneration } from "../db/generation.ts";

export interface VnodeSettingsInput {
  name: string;
  mailHostname?: string;
  mailListen?: string;
  rspamd?: boolean;
  clamav?: boolean;
  /** "addr:port" of the agent's HTTPS listener (MTA-STS, autoconfig); "" = off. */
  webListen?: string;
  /** Absolute directory an existing web server serves; "" = none. */
  webDirectory?: string;
  /** "addr:port" of the agent's plain-HTTP listener for ACME HTTP-01; "" = off. */
  httpListen?: string;
}

/** "" = off; else an IP:port (the agent binds it, so no host names). */
export function parseWebListen(text: string, field = "web-listen", example = "192.0.2.10:443"): string | null {
  if (text === "") return null;
  const hp = parseHostPort(text, field);
  if (hp.kind === "name")
    throw invalid(field, `'${text.slice(0, 60)}' must be an IP address and port, e.g. ${example}`);
  return hp.kind === "ipv6" ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** "" = none; else an absolute path without '..' or control characters. */
export function parseWebDirectory(text: string): string | null {
  if (text === "") return null;
  if (!text.startsWith("/") || text.split("/").includes("..") || /[^\x20-\x7e]/.test(text) || text.length > 255)
    throw invalid(
      "web-directory",
      "must be an absolute path of printable ASCII (no '..', at most 255 characters), e.g. /var/www/mail-autoconfig",
    );
  return text.replace(/\/+$/, "") || "/";
}

/** Writes the entity's changes, then moves the generation in SQL and reads the row back. */
async function bumped(tx: SqlEntityManager, vnode: Vnode): Promise<Vnode> {
  await tx.flush();
  await bumpGeneration(tx, vnode.id);
  await tx.refresh(vnode);
  return vnode;
}

export async function changeVnodeSettings(em: SqlEntityManager, input: VnodeSettingsInput): Promise<Vnode> {
  const hostname =
    input.mailHostname === undefined ? undefined : parseDomain(input.mailHostname, "mail-hostname").ascii;
  const listen =
    input.mailListen === undefined
      ? undefined
      : input.mailListen === ""
        ? null
        : input.mailListen.split(",").map((raw, index) => {
            const address = raw.trim();
            if (isIP(address) === 0)
              throw invalid("mail-listen", `entry ${index + 1} '${address.slice(0, 60)}' is not an IP address`);
            return address;
          });
  const webListen = input.webListen === undefined ? undefined : parseWebListen(input.webListen);
  const webDirectory = input.webDirectory === undefined ? undefined : parseWebDirectory(input.webDirectory);
  const httpListen =
    input.httpListen === undefined ? undefined : parseWebListen(input.httpListen, "http-listen", "192.0.2.10:80");
  return em.transactional(async (tx) => {
    const vnode = await findVnode(tx, input.name);
    if (webListen !== undefined) vnode.webListen = webListen;
    if (webDirectory !== undefined) vnode.webDirectory = webDirectory;
    if (httpListen !== undefined) vnode.httpListen = httpListen;
    if (hostname !== undefined) vnode.mailHostname = hostname;
    if (listen !== undefined) vnode.mailListen = listen;
    if (input.rspamd !== undefined) vnode.rspamdEnabled = input.rspamd;
    if (input.clamav !== undefined) vnode.clamavEnabled = input.clamav;
    return bumped(tx, vnode);
  });
}

/** Checks an operator's certificate chain and key before they are stored: they must parse, match,
 * be valid now and cover the vnode's mail host name. */
export function checkOperatorTls(chainPem: string, keyPem: string, hostname: string): { notAfter: Date } {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chainPem);
  } catch {
    throw invalid("cert", "not a PEM certificate chain");
  }
  let publicFromKey: string;
  try {
    publicFromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "pem" }).toString();
  } catch {
    throw invalid("key", "not a PEM private key");
  }
  if (leaf.publicKey.export({ type: "spki", format: "pem" }).toString() !== publicFromKey)
    throw invalid("key", "does not belong to the certificate");
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= Date.now() || new Date(leaf.validFrom).getTime() > Date.now())
    throw invalid("cert", `not valid now (valid ${leaf.validFrom} to ${leaf.validTo})`);
  if (leaf.checkHost(hostname) === undefined) throw invalid("cert", `does not cover the mail host name ${hostname}`);
  return { notAfter };
}

export async function setOperatorTls(
  em: SqlEntityManager,
  input: { name: string; chainPem: string; keyPem: string },
): Promise<Vnode> {
  return em.transactional(async (tx) => {
    const vnode = await findVnode(tx, input.name);
    const hostname = vnode.mailHostname ?? vnode.name;
    const { notAfter } = checkOperatorTls(input.chainPem, input.keyPem, hostname);
    // The operator's certificate wins: an ACME order for the mail host would replace it at its renewal.
    await tx.nativeDelete(AcmeCertificate, { vnodeId: vnode.id, purpose: "mail-host" });
    const row = await tx.findOne(MailTls, { vnodeId: vnode.id });
    if (row)
      Object.assign(row, {
        source: "operator",
        hostname,
        certificateChainPem: input.chainPem,
        privateKeyPem: input.keyPem,
        notAfter,
      });
    else
      tx.create(MailTls, {
        vnodeId: vnode.id,
        source: "operator",
        hostname,
        certificateChainPem: input.chainPem,
        privateKeyPem: input.keyPem,
        notAfter,
      });
    return bumped(tx, vnode);
  });
}

/** Back to the controller's CA: the operator's or ACME's certificate goes, and so do the ACME
 * orders, their per-domain certificates and the vnode's ACME policy (no more renewals, no domain
 * followed); the CA issues one at the next push. */
export async function clearOperatorTls(em: SqlEntityManager, name: string): Promise<Vnode> {
  return em.transactional(async (tx) => {
    const vnode = await findVnode(tx, name);
    const removed = await tx.nativeDelete(MailTls, { vnodeId: vnode.id, source: { $in: ["operator", "acme"] } });
    const orders = await tx.nativeDelete(AcmeCertificate, { vnodeId: vnode.id });
    const policies = await tx.nativeDelete(AcmeVnodePolicy, { vnodeId: vnode.id });
    await tx.nativeDelete(MailCertificate, { vnodeId: vnode.id, issuer: "acme" });
    if (removed === 0 && orders === 0 && policies === 0)
      throw new NetservaError("not_found", `vnode ${name} has no operator or ACME certificate; the CA's is in use`);
    return bumped(tx, vnode);
  });
}
