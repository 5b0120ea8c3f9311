// What `mail:tls show` prints: for every vnode the certificate its mail daemons present (source,
// issuer, names, expiry), when it is replaced next, and for ACME the order's state, failures in a
// row and the last error — one command to see every certificate, failures included.
import { X509Certificate } from "node:crypto";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { pemBlocks } from "../../../common/pki/trust-bundle.ts";
import { AcmeCertificate, MailCertificate, MailTls, Vnode, mailHostnameOf } from "../../db/entities/index.ts";
import { readControllerConfig } from "../../home/controller-config.ts";
import type { HomePaths } from "../../home/home-paths.ts";
import { mailTlsRenewBeforeMs } from "../../pki/mail-tls.ts";

export interface MailTlsViewRow {
  vnode: string;
  /** "mail" (the mail host's, what the daemons present by default) or "domain:<domain>" (by SNI). */
  certificate: string;
  hostname: string;
  source: string;
  issuer: string | null;
  names: string[];
  notAfter: string | null;
  nextRenewal: string | null;
  acme: string | null;
  acmeServer: string | null;
  failures: number;
  lastError: string | null;
  /** The ACME server's suggested renewal window (ARI, RFC 9773); null when it offers none. */
  renewalWindow: { start: string; end: string } | null;
  /** The ACME server said to wait until then (rate limited, or busy with a Retry-After). */
  retryAfter: string | null;
}

function acmeSchedule(order: AcmeCertificate | undefined): Pick<MailTlsViewRow, "renewalWindow" | "retryAfter"> {
  const start = order?.renewalWindowStart;
  const end = order?.renewalWindowEnd;
  return {
    renewalWindow: start && end ? { start: start.toISOString(), end: end.toISOString() } : null,
    retryAfter: order?.retryAfter ? order.retryAfter.toISOString() : null,
  };
}

export const MAIL_TLS_COLUMNS: Array<keyof MailTlsViewRow & string> = [
  "vnode",
  "certificate",
  "hostname",
  "source",
  "issuer",
  "names",
  "notAfter",
  "nextRenewal",
  "acme",
  "failures",
  "retryAfter",
  "lastError",
];

function leafOf(chainPem: string): X509Certificate | undefined {
  const pem = pemBlocks(chainPem)[0];
  try {
    return pem === undefined ? undefined : new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function issuerName(leaf: X509Certificate): string {
  return /(?:^|\n)CN=([^\n]+)/.exec(leaf.issuer)?.[1] ?? leaf.issuer.replace(/\n/g, ", ");
}

function sans(leaf: X509Certificate): string[] {
  return (leaf.subjectAltName ?? "")
    .split(", ")
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice(4));
}

export async function mailTlsView(
  em: SqlEntityManager,
  paths: HomePaths,
  name: string | undefined,
): Promise<MailTlsViewRow[]> {
  const vnodes = await em.find(Vnode, name ? { name } : {}, { orderBy: { name: "asc" } });
  const ids = vnodes.map((v) => v.id);
  const certs = new Map((await em.find(MailTls, { vnodeId: { $in: ids } })).map((r) => [r.vnodeId, r]));
  const allOrders = await em.find(AcmeCertificate, { vnodeId: { $in: ids } }, { orderBy: { purpose: "asc" } });
  const orders = new Map(allOrders.filter((r) => r.purpose === "mail-host").map((r) => [r.vnodeId, r]));
  const named = await em.find(MailCertificate, { vnodeId: { $in: ids } }, { orderBy: { id: "asc" } });
  let renewBefore: number | undefined;
  const caRenewBefore = (): number =>
    (renewBefore ??= mailTlsRenewBeforeMs({
      lifetimeSeconds: readControllerConfig(paths.config).mailTlsCertificateSeconds,
    }));
  const rows: MailTlsViewRow[] = [];
  for (const v of vnodes) {
    const cert = certs.get(v.id);
    const order = orders.get(v.id);
    const leaf = cert ? leafOf(cert.certificateChainPem) : undefined;
    const nextRenewal =
      order !== undefined
        ? order.nextAttemptAt
        : cert?.source === "ca"
          ? new Date(cert.notAfter.getTime() - caRenewBefore())
          : null; // the operator's: renewed by the operator
    rows.push({
      vnode: v.name,
      certificate: "mail",
      hostname: mailHostnameOf(v),
      source: cert?.source ?? "none yet",
      issuer: leaf ? issuerName(leaf) : null,
      names: leaf ? sans(leaf) : [],
      notAfter: cert ? cert.notAfter.toISOString() : null,
      nextRenewal: nextRenewal ? nextRenewal.toISOString() : null,
      acme: order ? order.state : null,
      acmeServer: order ? order.serverUrl : null,
      failures: order?.failures ?? 0,
      lastError: order?.lastError ?? null,
      ...acmeSchedule(order),
    });
    // Certificates by name (SNI): each domain's ACME order, with what it stored.
    for (const o of allOrders.filter((r) => r.vnodeId === v.id && r.purpose !== "mail-host")) {
      const stored = named.find((c) => c.vnodeId === v.id && c.issuer === "acme" && c.names.includes(o.names[0] ?? ""));
      const storedLeaf = stored ? leafOf(stored.certificateChainPem) : undefined;
      rows.push({
        vnode: v.name,
        certificate: o.purpose,
        hostname: o.names[0] ?? "",
        source: stored ? "acme" : "none yet",
        issuer: storedLeaf ? issuerName(storedLeaf) : null,
        names: storedLeaf ? sans(storedLeaf) : o.names,
        notAfter: stored ? stored.notAfter.toISOString() : null,
        nextRenewal: o.nextAttemptAt.toISOString(),
        acme: o.state,
        acmeServer: o.serverUrl,
        failures: o.failures,
        lastError: o.lastError ?? null,
        ...acmeSchedule(o),
      });
    }
  }
  return rows;
}
