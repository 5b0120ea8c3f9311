import { Vnode, mailHostnameOf } from "./vnode.ts";
import { Certificate } from "./certificate.ts";
import { JoinToken } from "./join-token.ts";
import { CommandLog } from "./command-log.ts";
import { VMailService } from "./mail-service.ts";
import { VMailDomain } from "./mail-domain.ts";
import { VMailbox } from "./mailbox.ts";
import { VMailAlias } from "./mail-alias.ts";
import { VConf } from "./vconf.ts";
import { MailTls } from "./mail-tls.ts";
import { DkimKeyRow } from "./dkim-key.ts";
import { MailDnsPolicy } from "./mail-dns-policy.ts";
import { MailHealthSample } from "./mail-health-sample.ts";
import { CertificateAuthority } from "./certificate-authority.ts";
import { MailCertificate } from "./mail-certificate.ts";
import { AcmeAccount, AcmeCertificate, AcmeVnodePolicy } from "./acme.ts";

export {
  Vnode,
  mailHostnameOf,
  Certificate,
  JoinToken,
  CommandLog,
  VMailService,
  VMailDomain,
  VMailbox,
  VMailAlias,
  VConf,
  MailTls,
  DkimKeyRow,
  MailDnsPolicy,
  MailHealthSample,
  CertificateAuthority,
  MailCertificate,
  AcmeAccount,
  AcmeCertificate,
  AcmeVnodePolicy,
};

/** Every entity the controller maps; the ORM is given this list, no folder scanning. */
export const allEntities = [
  Vnode,
  Certificate,
  JoinToken,
  CommandLog,
  VMailService,
  VMailDomain,
  VMailbox,
  VMailAlias,
  VConf,
  MailTls,
  DkimKeyRow,
  MailDnsPolicy,
  MailHealthSample,
  CertificateAuthority,
  MailCertificate,
  AcmeAccount,
  AcmeCertificate,
  AcmeVnodePolicy,
];
