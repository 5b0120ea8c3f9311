import { defineEntity, p } from "@mikro-orm/core";

/** A DKIM key of a mail domain. pending: published (or printed), not signing yet; active: Rspamd
 * signs with it; retired: no longer signing, its DNS record stays until `--finish`. */
export const DkimKeyRowSchema = defineEntity({
  name: "DkimKeyRow",
  tableName: "dkim_keys",
  properties: {
    id: p.integer().primary().autoincrement(),
    domainId: p.integer().index(),
    selector: p.string(),
    /** rsa | ed25519 */
    algorithm: p.string(),
    bits: p.integer().nullable(),
    /** PKCS#8 PEM; hidden: never serialised into listings or logs. */
    privateKeyPem: p.text().hidden().lazy(),
    /** The p= value of the DNS record (base64). */
    publicKey: p.text(),
    /** pending | active | retired */
    state: p.string(),
    createdAt: p.datetime().onCreate(() => new Date()),
    activatedAt: p.datetime().nullable(),
    retiredAt: p.datetime().nullable(),
  },
});

export class DkimKeyRow extends DkimKeyRowSchema.class {}
DkimKeyRowSchema.setClass(DkimKeyRow);
