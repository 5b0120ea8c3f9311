import { defineEntity, p } from "@mikro-orm/core";

/** Our account at one ACME server: its key (kept like the other keys) and the URL the server gave it. */
export const AcmeAccountSchema = defineEntity({
  name: "AcmeAccount",
  tableName: "acme_accounts",
  properties: {
    id: p.integer().primary().autoincrement(),
    serverUrl: p.string().unique(),
    email: p.string().nullable(),
    accountKeyPem: p.text().hidden(),
    accountUrl: p.string().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});
export class AcmeAccount extends AcmeAccountSchema.class {}
AcmeAccountSchema.setClass(AcmeAccount);

/**
 * A certificate a vnode gets from an ACME server (purpose "mail-host": the vnode's mail host name,
 * served from mail_tls with source "acme"). The row is the schedule: `nextAttemptAt` is the next
 * renewal (2/3 of the lifetime) or retry (exponential backoff after `failures`); `claimedBy` /
 * `claimedUntil` let exactly one controller process run an order at a time.
 */
export const AcmeCertificateSchema = defineEntity({
  name: "AcmeCertificate",
  tableName: "acme_certificates",
  properties: {
    id: p.integer().primary().autoincrement(),
    vnodeId: p.integer(),
    purpose: p.string(),
    serverUrl: p.string(),
    /** PEM trusted for the ACME server's own HTTPS (a test or private ACME server); null = system roots. */
    serverCaPem: p.text().nullable(),
    email: p.string().nullable(),
    /** dns-01 | http-01 */
    challenge: p.string(),
    names: p.json<string[]>(),
    /** pending (never issued) | valid | failing (the last attempt failed; a valid one may still be
     *  served) | rate-limited (the server said to wait until `retryAfter`) */
    state: p.string(),
    issuer: p.string().nullable(),
    notBefore: p.datetime().nullable(),
    notAfter: p.datetime().nullable(),
    nextAttemptAt: p.datetime(),
    failures: p.integer().default(0),
    lastError: p.text().nullable(),
    lastAttemptAt: p.datetime().nullable(),
    /** ARI (RFC 9773) ID of the certificate in use: base64url(AKI key id).base64url(serial). */
    certificateId: p.string().nullable(),
    /** The server's suggested renewal window (ARI); null when it offers none (renewal at 2/3). */
    renewalWindowStart: p.datetime().nullable(),
    renewalWindowEnd: p.datetime().nullable(),
    /** When to ask for the renewal window again (the ARI answer's Retry-After). */
    renewalInfoCheckAt: p.datetime().nullable(),
    /** The server said to wait until then (rateLimited or a Retry-After on an error). */
    retryAfter: p.datetime().nullable(),
    claimedBy: p.string().nullable(),
    claimedUntil: p.datetime().nullable(),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});
export class AcmeCertificate extends AcmeCertificateSchema.class {}
AcmeCertificateSchema.setClass(AcmeCertificate);

/**
 * Per vnode: the ACME server its certificates come from (the last `mail:tls acme` said which), and
 * which hosted domains the sweep orders for without being named — every domain that asked for
 * MTA-STS always, every active domain with `allDomains` (`mail:tls acme <vnode> --all-domains`).
 */
export const AcmeVnodePolicySchema = defineEntity({
  name: "AcmeVnodePolicy",
  tableName: "acme_vnode_policies",
  properties: {
    vnodeId: p.integer().primary(),
    serverUrl: p.string(),
    serverCaPem: p.text().nullable(),
    email: p.string().nullable(),
    challenge: p.string(),
    allDomains: p.boolean().default(false),
    /** Domain certificates ordered by the sweep include mail.<domain>. */
    mailName: p.boolean().default(false),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});
export class AcmeVnodePolicy extends AcmeVnodePolicySchema.class {}
AcmeVnodePolicySchema.setClass(AcmeVnodePolicy);
