import { defineEntity, p } from "@mikro-orm/core";

/**
 * A certificate for some DNS names of a vnode, presented by name (SNI) on its HTTPS listener and
 * mail ports; names without an entry get the vnode's mail certificate (MailTls). This table is the
 * seam between whoever obtains certificates (ACME, the operator) and what is served: add, replace
 * or delete a row and bump the vnode's generation in the same transaction.
 */
export const MailCertificateSchema = defineEntity({
  name: "MailCertificate",
  tableName: "mail_certificates",
  properties: {
    id: p.integer().primary().autoincrement(),
    vnodeId: p.integer(),
    /** DNS names (lowercase A-labels) the certificate covers and is served for. */
    names: p.json<string[]>(),
    /** acme | ca | operator: acme means publicly trusted (MTA-STS may enforce). */
    issuer: p.string(),
    certificateChainPem: p.text(),
    privateKeyPem: p.text().hidden(),
    notAfter: p.datetime(),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class MailCertificate extends MailCertificateSchema.class {}
MailCertificateSchema.setClass(MailCertificate);
