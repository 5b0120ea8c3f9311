import { defineEntity, p } from "@mikro-orm/core";

/** A hosted mail domain (NetServa `vhosts`) with its limits; one vnode hosts it. */
export const VMailDomainSchema = defineEntity({
  name: "VMailDomain",
  tableName: "mail_vhosts",
  properties: {
    id: p.integer().primary().autoincrement(),
    /** Lower-case IDNA A-label: the key paths, lookups and DNS use. */
    domain: p.string().unique(),
    vnodeId: p.integer().index(),
    active: p.boolean().default(true),
    /** Bytes; MQUOTA. 0 = unlimited. */
    defaultQuota: p.bigint("number"),
    /** 0 = unlimited. */
    maxMailboxes: p.integer().default(0),
    maxAliases: p.integer().default(0),
    /** Largest quota of one mailbox, bytes; 0 = unlimited. */
    maxQuota: p.bigint("number").default(0),
    /** Allow the sum of mailbox quotas to exceed the vnode's mail filesystem. */
    overcommit: p.boolean().default(false),
    dkimSelector: p.string().nullable(),
    dkimAlgorithm: p.string().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class VMailDomain extends VMailDomainSchema.class {}
VMailDomainSchema.setClass(VMailDomain);
