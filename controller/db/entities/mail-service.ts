import { defineEntity, p } from "@mikro-orm/core";

/** Per-vnode state of one managed service (postfix, dovecot, rspamd, clamav, agent). */
export const VMailServiceSchema = defineEntity({
  name: "VMailService",
  tableName: "mail_services",
  uniques: [{ properties: ["vnodeId", "service"] }],
  properties: {
    id: p.integer().primary().autoincrement(),
    vnodeId: p.integer().index(),
    service: p.string(),
    /** active | reloading | failed | stopped | absent | unknown */
    state: p.string().default("unknown"),
    version: p.string().nullable(),
    detail: p.text().nullable(),
    config: p.json<Record<string, unknown>>().nullable(),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class VMailService extends VMailServiceSchema.class {}
VMailServiceSchema.setClass(VMailService);
