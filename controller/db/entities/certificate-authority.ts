import { defineEntity, p } from "@mikro-orm/core";

/** A CA the controller has used. `active` signs; `previous` is still trusted during a rotation's
 * overlap; `retired` is trusted by no one. The key lives in the controller home; on PostgreSQL
 * with a key-encryption key it is also here, sealed (controller/pki/ca-seal.ts), never in clear. */
export const CertificateAuthoritySchema = defineEntity({
  name: "CertificateAuthority",
  tableName: "certificate_authorities",
  properties: {
    id: p.integer().primary().autoincrement(),
    /** "sha256:<hex>" of the CA's public key, as join tokens carry it. */
    pin: p.string().unique(),
    serial: p.string(),
    /** active | previous | retired */
    state: p.string(),
    certPem: p.text(),
    notBefore: p.datetime(),
    notAfter: p.datetime(),
    createdAt: p.datetime().onCreate(() => new Date()),
    retiredAt: p.datetime().nullable(),
    /** The CA's private key sealed under the controllers' KEK; null: not kept here (or destroyed). */
    keySealed: p.text().nullable(),
    /** For a CA that replaced another: the link certificate (this CA signed by the old one). */
    linkPem: p.text().nullable(),
  },
});

export class CertificateAuthority extends CertificateAuthoritySchema.class {}
CertificateAuthoritySchema.setClass(CertificateAuthority);
