import { defineEntity, p } from "@mikro-orm/core";

/** The certificate a vnode's mail daemons present: issued by the controller's CA, or the operator's. */
export const MailTlsSchema = defineEntity({
  name: "MailTls",
  tableName: "mail_tls",
  properties: {
    id: p.integer().primary().autoincrement(),
    vnodeId: p.integer().unique(),
    /** ca | operator */
    source: p.string(),
    hostname: p.string(),
    certificateChainPem: p.text(),
    privateKeyPem: p.text().hidden(),
    notAfter: p.datetime(),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class MailTls extends MailTlsSchema.class {}
MailTlsSchema.setClass(MailTls);
