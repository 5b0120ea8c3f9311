import { defineEntity, p } from "@mikro-orm/core";

/** An alias or catch-all (NetServa `valias`): source → one or more addresses, local or remote. */
export const VMailAliasSchema = defineEntity({
  name: "VMailAlias",
  tableName: "mail_valias",
  properties: {
    id: p.integer().primary().autoincrement(),
    domainId: p.integer().index(),
    /** local@ascii-domain, or "@ascii-domain" for a catch-all. */
    source: p.string().unique(),
    /** Canonical addresses (local@ascii-domain), a JSON array; GIN-indexed for "who points here". */
    targets: p.json<string[]>(),
    active: p.boolean().default(true),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class VMailAlias extends VMailAliasSchema.class {}
VMailAliasSchema.setClass(VMailAlias);
