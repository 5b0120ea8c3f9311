// The certificate a vnode's mail daemons present. The operator's own (`mail:tls set`) wins;
// otherwise the controller's CA issues one for the mail host name and renews it when it is
// within 30 days of expiry or the host name changed.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { issueServerCertificate } from "../../common/pki/server-cert.ts";
import { MailTls } from "../db/entities/index.ts";
import type { Vnode } from "../db/entities/index.ts";

const RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;
const LIFETIME_SECONDS = 397 * 24 * 3600;

export function mailHostnameOf(vnode: Pick<Vnode, "name" | "mailHostname">): string {
  return vnode.mailHostname ?? vnode.name;
}

export async function ensureMailTls(
  em: SqlEntityManager,
  vnode: Vnode,
  ca: { caKeyPem(): string; caCertPem(): string },
): Promise<MailTls> {
  const hostname = mailHostnameOf(vnode);
  const current = await em.findOne(MailTls, { vnodeId: vnode.id });
  if (
    current &&
    (current.source === "operator" ||
      (current.hostname === hostname && current.notAfter.getTime() - Date.now() > RENEW_BEFORE_MS))
  )
    return current;
  const caCertPem = ca.caCertPem();
  const issued = await issueServerCertificate({
    caKeyPem: ca.caKeyPem(),
    caCertPem,
    dnsNames: [hostname],
    validSeconds: LIFETIME_SECONDS,
  });
  const chain = issued.certPem.trimEnd() + "\n" + caCertPem;
  if (current) {
    current.source = "ca";
    current.hostname = hostname;
    current.certificateChainPem = chain;
    current.privateKeyPem = issued.keyPem;
    current.notAfter = issued.notAfter;
    await em.flush();
    return current;
  }
  const row = em.create(MailTls, {
    vnodeId: vnode.id,
    source: "ca",
    hostname,
    certificateChainPem: chain,
    privateKeyPem: issued.keyPem,
    notAfter: issued.notAfter,
  });
  await em.flush();
  return row;
}
