import { defineEntity, p } from "@mikro-orm/core";

/** Every certificate the CA issued, so it can be listed, expired and revoked by serial. */
export const CertificateSchema = defineEntity({
  name: "Certificate",
  tableName: "certificates",
  properties: {
    id: p.integer().primary().autoincrement(),
    serial: p.string().unique(),
    role: p.string(),
    identity: p.string().index(),
    vnodeId: p.integer().nullable().index(),
    notBefore: p.datetime(),
    notAfter: p.datetime(),
    revokedAt: p.datetime().nullable(),
    pem: p.text(),
    createdAt: p.datetime().onCreate(() => new Date()),
  },
});

export class Certificate extends CertificateSchema.class {}
CertificateSchema.setClass(Certificate);
