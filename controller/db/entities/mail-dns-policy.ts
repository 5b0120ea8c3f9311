import { defineEntity, p } from "@mikro-orm/core";

/** What `mail:dns` publishes for a domain beyond MX and DKIM; null fields mean the defaults. */
export const MailDnsPolicySchema = defineEntity({
  name: "MailDnsPolicy",
  tableName: "mail_dns_policies",
  properties: {
    id: p.integer().primary().autoincrement(),
    domainId: p.integer().unique(),
    spf: p.string().nullable(),
    /** none | quarantine | reject */
    dmarcPolicy: p.string().nullable(),
    dmarcRua: p.string().nullable(),
    mtaSts: p.boolean().default(false),
    tlsRptRua: p.string().nullable(),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class MailDnsPolicy extends MailDnsPolicySchema.class {}
MailDnsPolicySchema.setClass(MailDnsPolicy);
