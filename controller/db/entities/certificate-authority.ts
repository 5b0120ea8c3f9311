import { defineEntity, p } from "@mikro-orm/core";

/** A CA the controller has used. `active` signs; `previous` is still trusted during a rotation's
 * overlap; `retired` is trusted by no one. The key lives in the controller home, never here. */
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
  },
});

export class CertificateAuthority extends CertificateAuthoritySchema.class {}
CertificateAuthoritySchema.setClass(CertificateAuthority);
