// The certificate a vnode's mail daemons present. The operator's own (`mail:tls set`) wins;
// otherwise the controller's CA issues one for the mail host name and renews it when it is
// within 30 days of expiry (a third of its lifetime, if that is shorter) or the host name changed. A new certificate is new desired state:
// the vnode's generation goes up in the same transaction, so it reaches the vnode through the
// reconciler whether or not a whole state would have been sent anyway.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { issueServerCertificate } from "../../common/pki/server-cert.ts";
import { verifyIssuedBy } from "../../common/pki/inspect.ts";
import { pemBlocks } from "../../common/pki/trust-bundle.ts";
import { MailTls, mailHostnameOf } from "../db/entities/index.ts";
import type { Vnode } from "../db/entities/index.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { readSigningCa } from "./ca-files.ts";
import { bumpGeneration, lockVnode } from "../db/generation.ts";

export const MAIL_TLS_RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
const LIFETIME_SECONDS = 397 * 24 * 3600;

/** The CA that signs mail TLS certificates (read when needed: `serve` may outlive a CA file change). */
export interface MailTlsIssuer {
  /** The signing CA's key and certificate, read as one pair. */
  signingCa(): { caKeyPem: string; caCertPem: string };
  /** Lifetime of a new certificate; default 397 days. */
  lifetimeSeconds?: number;
}

/** The home's CA, with the lifetime controller.json asks for (mailTlsCertificateSeconds). */
export function mailTlsIssuerFor(paths: HomePaths, lifetimeSeconds?: number): MailTlsIssuer {
  return {
    signingCa: () => readSigningCa(paths),
    ...(lifetimeSeconds !== undefined ? { lifetimeSeconds } : {}),
  };
}

/** How long before expiry a CA certificate is replaced: 30 days, or a third of a shorter lifetime. */
export function mailTlsRenewBeforeMs(issuer: Pick<MailTlsIssuer, "lifetimeSeconds">): number {
  return Math.min(MAIL_TLS_RENEW_BEFORE_MS, ((issuer.lifetimeSeconds ?? LIFETIME_SECONDS) * 1000) / 3);
}

/** Whether a CA-issued mail certificate came from another CA than `caCertPem` (a CA rotation:
 *  the old CA's are reissued by the new one before it is retired). */
export function fromAnotherCa(certificateChainPem: string, caCertPem: string): boolean {
  const leaf = pemBlocks(certificateChainPem)[0];
  if (leaf === undefined) return true;
  try {
    return !verifyIssuedBy(leaf, caCertPem);
  } catch {
    return true;
  }
}

/** Whether the vnode needs a (new) certificate from the CA now. */
export function mailTlsDue(
  current: (Pick<MailTls, "source" | "hostname" | "notAfter"> & { certificateChainPem?: string }) | null,
  hostname: string,
  now = Date.now(),
  renewBeforeMs = MAIL_TLS_RENEW_BEFORE_MS,
  caCertPem?: string,
): boolean {
  if (!current) return true;
  if (current.source === "operator") return false;
  // An ACME certificate is renewed by the ACME sweep; the CA's replaces it only when it no longer
  // fits (the host name changed) or has expired, until the ACME order succeeds again.
  if (current.source === "acme") return current.hostname !== hostname || current.notAfter.getTime() <= now;
  if (caCertPem !== undefined && current.certificateChainPem !== undefined)
    if (fromAnotherCa(current.certificateChainPem, caCertPem)) return true;
  return current.hostname !== hostname || current.notAfter.getTime() - now <= renewBeforeMs;
}

/**
 * Issues the vnode's mail certificate when it has none, or the CA's is due (near expiry, host
 * name changed). Returns the new generation when it issued one, null when nothing was due.
 */
export async function renewMailTlsIfDue(
  em: SqlEntityManager,
  vnode: Pick<Vnode, "id" | "name" | "mailHostname">,
  issuer: MailTlsIssuer,
): Promise<number | null> {
  const hostname = mailHostnameOf(vnode);
  const renewBefore = mailTlsRenewBeforeMs(issuer);
  const { caKeyPem, caCertPem } = issuer.signingCa();
  const due = (row: MailTls | null): boolean => mailTlsDue(row, hostname, Date.now(), renewBefore, caCertPem);
  if (!due(await em.fork().findOne(MailTls, { vnodeId: vnode.id }))) return null;
  // Key generation and signing outside the transaction: they take a while and need no rows.
  const issued = await issueServerCertificate({
    caKeyPem,
    caCertPem,
    dnsNames: [hostname],
    validSeconds: issuer.lifetimeSeconds ?? LIFETIME_SECONDS,
  });
  const fields = {
    source: "ca",
    hostname,
    certificateChainPem: issued.certPem.trimEnd() + "\n" + caCertPem,
    privateKeyPem: issued.keyPem,
    notAfter: issued.notAfter,
  };
  return em.fork().transactional(async (tx) => {
    // Checked again under the transaction: an operator certificate stored meanwhile wins, and
    // of two renewals racing the second finds nothing due.
    await lockVnode(tx, vnode.id);
    const current = await tx.findOne(MailTls, { vnodeId: vnode.id });
    if (!due(current)) return null;
    if (current) Object.assign(current, fields);
    else tx.create(MailTls, { vnodeId: vnode.id, ...fields });
    await tx.flush();
    return bumpGeneration(tx, vnode.id);
  });
}
