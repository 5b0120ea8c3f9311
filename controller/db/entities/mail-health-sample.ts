import { defineEntity, p } from "@mikro-orm/core";

/** One sample of a vnode's mail health (mail_health_history; bounded by controller/health). */
export const MailHealthSampleSchema = defineEntity({
  name: "MailHealthSample",
  tableName: "mail_health_history",
  properties: {
    id: p.bigint("number").primary().autoincrement(),
    vnodeId: p.integer(),
    at: p.datetime(),
    appliedGeneration: p.bigint("number").default(0),
    drift: p.boolean().default(false),
    servicesDown: p.integer().default(0),
    queueActive: p.integer().nullable(),
    queueDeferred: p.integer().nullable(),
    queueHold: p.integer().nullable(),
    queueIncoming: p.integer().nullable(),
    oldestDeferredSeconds: p.double().nullable(),
    dovecotUsers: p.integer().nullable(),
    rspamdScanned: p.bigint("number").nullable(),
    fsUsedBytes: p.bigint("number").nullable(),
    fsSizeBytes: p.bigint("number").nullable(),
    quotaOver90: p.integer().nullable(),
  },
});

export class MailHealthSample extends MailHealthSampleSchema.class {}
MailHealthSampleSchema.setClass(MailHealthSample);
