// What a vnode presents, read from the database: its named certificates (mail_certificates, the
// SNI seam) and its mail certificate (mail_tls), with the controller's CAs to tell ACME's apart.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { CertificateAuthority, MailCertificate, MailTls } from "../db/entities/index.ts";
import { mtaStsModeFor, type MtaStsMode, type PresentedCertificate } from "./mta-sts.ts";

/** The vnode's certificates as the compiler pushes them (named ones, and the mail one). */
export async function presentedCertificates(
  em: SqlEntityManager,
  vnodeId: number,
): Promise<{ named: PresentedCertificate[]; mail: PresentedCertificate | null; controllerCaPems: string[] }> {
  const named = await em.find(MailCertificate, { vnodeId }, { orderBy: { id: "asc" } });
  const mail = await em.findOne(MailTls, { vnodeId });
  const cas = await em.find(CertificateAuthority, {});
  return {
    named: named.map((c) => ({ names: c.names, issuer: c.issuer, certificateChainPem: c.certificateChainPem })),
    mail: mail ? { names: [mail.hostname], issuer: mail.source, certificateChainPem: mail.certificateChainPem } : null,
    controllerCaPems: cas.map((c) => c.certPem),
  };
}

/** The mode of every MTA-STS policy of a vnode whose MX is `mailHost`. */
export async function mtaStsModeOf(em: SqlEntityManager, vnodeId: number, mailHost: string): Promise<MtaStsMode> {
  const p = await presentedCertificates(em, vnodeId);
  return mtaStsModeFor(mailHost, p.named, p.mail, p.controllerCaPems);
}
