import { defineEntity, p } from "@mikro-orm/core";

/** A one-time join token: only the SHA-256 of its secret is stored. */
export const JoinTokenSchema = defineEntity({
  name: "JoinToken",
  tableName: "join_tokens",
  properties: {
    id: p.integer().primary().autoincrement(),
    tokenId: p.string().unique(),
    secretHash: p.string(),
    vnodeId: p.integer().index(),
    expiresAt: p.datetime(),
    usedAt: p.datetime().nullable(),
    /** Pin of the CA the join string carries (null: made before CA rotation existed). */
    caPin: p.string().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export class JoinToken extends JoinTokenSchema.class {}
JoinTokenSchema.setClass(JoinToken);
