// The compiler: database rows → the whole desired state of one vnode at its generation. Read in
// a single repeatable-read snapshot so rows and generation agree. It only reads: the mail TLS
// certificate is issued by controller/pki/mail-tls.ts before a state is compiled.
import { create } from "@bufbuild/protobuf";
import { IsolationLevel } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { notFound } from "../../common/errors.ts";
import {
  DesiredStateSchema,
  DkimKeySchema,
  NamedCertificateSchema,
  ServedDomainSchema,
  TlsMaterialSchema,
  VnodeSettingsSchema,
} from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { MailCertificate, mailHostnameOf } from "../db/entities/index.ts";
import { mtaStsModeFor, mtaStsPolicy, presentedFor } from "../dns/mta-sts.ts";
import { presentedCertificates } from "../dns/presented-certificates.ts";
import type { Vnode } from "../db/entities/index.ts";
import { aliasToProto, domainToProto, mailboxToProto } from "../mail/state-changes.ts";

interface DomainRow {
  domain: string;
  active: boolean;
}
interface MailboxRow {
  ascii: string;
  password_hash: string;
  quota: string | number;
  active: boolean;
  sieve_script: string | null;
  display_name: string | null;
  home: string | null;
  uid: number | null;
  gid: number | null;
}
interface DkimRow {
  domain: string;
  selector: string;
  algorithm: string;
  private_key_pem: string;
}
interface TlsRow {
  certificate_chain_pem: string;
  private_key_pem: string;
}
interface VnodeRow {
  generation: string | number;
  name: string;
  mail_hostname: string | null;
  mail_listen: string[] | string | null;
  rspamd_enabled: boolean;
  clamav_enabled: boolean;
  web_listen: string | null;
  http_listen: string | null;
  web_directory: string | null;
}
interface ServedRow {
  domain: string;
  mta_sts: boolean | null;
}
interface AliasRow {
  source: string;
  targets: string[] | string;
  active: boolean;
}

function targetList(value: string[] | string): string[] {
  if (Array.isArray(value)) return value;
  const text = value.trim();
  return text.startsWith("[")
    ? (JSON.parse(text) as string[])
    : text
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean);
}

function listenList(value: string[] | string | null): string[] {
  if (value === null) return [];
  return Array.isArray(value) ? value : (JSON.parse(value) as string[]);
}

export async function compileDesiredState(em: SqlEntityManager, vnode: Pick<Vnode, "id">): Promise<DesiredState> {
  return em.transactional(
    async (tx) => {
      const connection = tx.getConnection();
      const ctxTx = tx.getTransactionContext();
      // Settings from the same snapshot as the generation: a caller's entity may be older.
      const [v] = await connection.execute<VnodeRow[]>(
        "select generation, name, mail_hostname, mail_listen, rspamd_enabled, clamav_enabled, web_listen, web_directory, http_listen from vnodes where id = ?",
        [vnode.id],
        "all",
        ctxTx,
      );
      const domains = await connection.execute<DomainRow[]>(
        "select domain, active from mail_vhosts where vnode_id = ? order by domain",
        [vnode.id],
        "all",
        ctxTx,
      );
      const mailboxes = await connection.execute<MailboxRow[]>(
        "select b.address as ascii, b.password_hash, b.quota, b.active, b.sieve_script, b.display_name, b.home, b.uid, b.gid from mail_vboxes b join mail_vhosts d on d.id = b.domain_id where d.vnode_id = ? order by b.address",
        [vnode.id],
        "all",
        ctxTx,
      );
      const aliases = await connection.execute<AliasRow[]>(
        "select a.source, a.targets, a.active from mail_valias a join mail_vhosts d on d.id = a.domain_id where d.vnode_id = ? order by a.source",
        [vnode.id],
        "all",
        ctxTx,
      );
      // Only active keys sign; pending (not yet visible in DNS) and retired ones stay in the DB.
      const dkimKeys = await connection.execute<DkimRow[]>(
        "select d.domain, k.selector, k.algorithm, k.private_key_pem from dkim_keys k join mail_vhosts d on d.id = k.domain_id where d.vnode_id = ? and k.state = 'active' order by d.domain, k.selector",
        [vnode.id],
        "all",
        ctxTx,
      );
      const [tls] = await connection.execute<TlsRow[]>(
        "select certificate_chain_pem, private_key_pem from mail_tls where vnode_id = ?",
        [vnode.id],
        "all",
        ctxTx,
      );
      const servedRows = await connection.execute<ServedRow[]>(
        "select d.domain, p.mta_sts from mail_vhosts d left join mail_dns_policies p on p.domain_id = d.id where d.vnode_id = ? and d.active order by d.domain",
        [vnode.id],
        "all",
        ctxTx,
      );
      const challenges = await connection.execute<Array<{ token: string; key_authorization: string }>>(
        "select token, key_authorization from acme_http_challenges where vnode_id = ? order by token",
        [vnode.id],
        "all",
        ctxTx,
      );
      if (!v) throw notFound(`vnode ${vnode.id} not found`);
      const mailHostname = mailHostnameOf({ name: v.name, mailHostname: v.mail_hostname });
      const presented = await presentedCertificates(tx, vnode.id);
      const named = await tx.find(MailCertificate, { vnodeId: vnode.id }, { orderBy: { id: "asc" } });
      const policy = mtaStsPolicy(
        mailHostname,
        mtaStsModeFor(mailHostname, presented.named, presented.mail, presented.controllerCaPems),
      );
      return create(DesiredStateSchema, {
        generation: BigInt(v.generation),
        settings: create(VnodeSettingsSchema, {
          mailHostname,
          listenAddresses: listenList(v.mail_listen),
          rspamdEnabled: v.rspamd_enabled,
          clamavEnabled: v.clamav_enabled,
          webListen: v.web_listen ?? "",
          webDirectory: v.web_directory ?? "",
          httpListen: v.http_listen ?? "",
        }),
        acmeChallenges: challenges.map((c) => ({ token: c.token, keyAuthorization: c.key_authorization })),
        certificates: named.map((c) =>
          create(NamedCertificateSchema, {
            names: c.names,
            certificateChainPem: c.certificateChainPem,
            privateKeyPem: c.privateKeyPem,
            issuer: c.issuer,
          }),
        ),
        // Every active domain gets mail client settings (its autoconfig/autodiscover CNAMEs are
        // always published); MTA-STS only where the domain asked for it (mail:dns --mta-sts).
        served: servedRows.map((r) =>
          create(ServedDomainSchema, {
            domain: r.domain,
            mtaStsPolicy: r.mta_sts === true ? policy : "",
            mailHost: presentedFor(`mail.${r.domain}`, presented.named, null) ? `mail.${r.domain}` : mailHostname,
          }),
        ),
        domains: domains.map(domainToProto),
        mailboxes: mailboxes.map((m) =>
          mailboxToProto({
            ascii: m.ascii,
            passwordHash: m.password_hash,
            quota: BigInt(m.quota ?? 0),
            active: m.active,
            sieveScript: m.sieve_script,
            displayName: m.display_name ?? "",
            home: m.home,
            uid: m.uid,
            gid: m.gid,
          }),
        ),
        aliases: aliases.map((a) =>
          aliasToProto({ source: a.source, targets: targetList(a.targets), active: a.active }),
        ),
        // None yet (no certificate issued): the agent refuses the state, naming the field.
        tls: create(TlsMaterialSchema, {
          certificateChainPem: tls?.certificate_chain_pem ?? "",
          privateKeyPem: tls?.private_key_pem ?? "",
        }),
        dkimKeys: dkimKeys.map((k) =>
          create(DkimKeySchema, {
            domain: k.domain,
            selector: k.selector,
            algorithm: k.algorithm,
            privateKeyPem: k.private_key_pem,
          }),
        ),
      });
    },
    { isolationLevel: IsolationLevel.REPEATABLE_READ, readOnly: true },
  );
}
