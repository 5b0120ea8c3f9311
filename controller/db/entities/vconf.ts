import { defineEntity, p } from "@mikro-orm/core";

/** A per-domain NetServa variable (MPWD, DPASS, …); secrets are stored as hashes only. */
export const VConfSchema = defineEntity({
  name: "VConf",
  tableName: "vconfs",
  uniques: [{ properties: ["domainId", "name"] }],
  properties: {
    id: p.integer().primary().autoincrement(),
    domainId: p.integer(),
    name: p.string(),
    /** The value, or for a secret its "{SHA512-CRYPT}…" hash. */
    value: p.text(),
    secret: p.boolean().default(false),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class VConf extends VConfSchema.class {}
VConfSchema.setClass(VConf);
