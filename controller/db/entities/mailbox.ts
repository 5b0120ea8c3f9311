import { defineEntity, p } from "@mikro-orm/core";

/** A virtual mailbox (NetServa `vmails`): only a Dovecot-verifiable hash of its password. */
export const VMailboxSchema = defineEntity({
  name: "VMailbox",
  tableName: "mail_vboxes",
  uniques: [{ properties: ["domainId", "localPart"] }],
  properties: {
    id: p.integer().primary().autoincrement(),
    domainId: p.integer(),
    localPart: p.string(),
    /** local@ascii-domain: the stored form, the lookup key Postfix and Dovecot see (column `address`). */
    ascii: p.string().fieldName("address").unique(),
    /** "{SHA512-CRYPT}$6$…" or "{ARGON2ID}$argon2id$…". */
    passwordHash: p.text(),
    /** Bytes, 0 = unlimited. */
    quota: p.bigint("number"),
    /** Bytes in use as last reported by the agent. */
    usage: p.bigint("number").nullable(),
    active: p.boolean().default(true),
    /** /srv/<domain>/msg/<user>/Maildir (NetServa's layout). */
    maildir: p.text(),
    /** An adopted mailbox's own home, uid and gid (used where and as they are); null = derived. */
    home: p.text().nullable(),
    uid: p.integer().nullable(),
    gid: p.integer().nullable(),
    sieveScript: p.text().nullable(),
    displayName: p.string().default(""),
    passwordChangedAt: p.datetime(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class VMailbox extends VMailboxSchema.class {}
VMailboxSchema.setClass(VMailbox);
