// The compiler: database rows → the whole desired state of one vnode at its generation. Read in
// a single repeatable-read snapshot so rows and generation agree.
import { create } from "@bufbuild/protobuf";
import { IsolationLevel } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/sql";
import {
  DesiredStateSchema,
  DkimKeySchema,
  MailAliasSchema,
  MailDomainSchema,
  MailboxSchema,
  TlsMaterialSchema,
  VnodeSettingsSchema,
} from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { Vnode } from "../db/entities/index.ts";
import { ensureMailTls, mailHostnameOf } from "./mail-tls.ts";

export interface CompileContext {
  caKeyPem(): string;
  caCertPem(): string;
}

interface DomainRow {
  domain: string;
  active: boolean;
}
interface MailboxRow {
  address: string;
  password_hash: string;
  quota: string | number;
  active: boolean;
  sieve_script: string | null;
  display_name: string | null;
}
interface DkimRow {
  domain: string;
  selector: string;
  algorithm: string;
  private_key_pem: string;
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

export async function compileDesiredState(
  em: SqlEntityManager,
  vnode: Vnode,
  ctx: CompileContext,
): Promise<DesiredState> {
  const tls = await ensureMailTls(em.fork(), vnode, ctx);
  return em.transactional(
    async (tx) => {
      const connection = tx.getConnection();
      const ctxTx = tx.getTransactionContext();
      const [generationRow] = await connection.execute<Array<{ generation: string | number }>>(
        "select generation from vnodes where id = ?",
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
        "select b.address, b.password_hash, b.quota, b.active, b.sieve_script, b.display_name from mail_vboxes b join mail_vhosts d on d.id = b.domain_id where d.vnode_id = ? order by b.address",
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
      return create(DesiredStateSchema, {
        generation: BigInt(generationRow?.generation ?? 0),
        settings: create(VnodeSettingsSchema, {
          mailHostname: mailHostnameOf(vnode),
          listenAddresses: vnode.mailListen ?? [],
          rspamdEnabled: vnode.rspamdEnabled,
          clamavEnabled: vnode.clamavEnabled,
        }),
        domains: domains.map((d) => create(MailDomainSchema, { domain: d.domain, active: d.active })),
        mailboxes: mailboxes.map((m) =>
          create(MailboxSchema, {
            address: m.address,
            passwordHash: m.password_hash,
            quotaBytes: BigInt(m.quota ?? 0),
            active: m.active,
            sieveScript: m.sieve_script ?? "",
            displayName: m.display_name ?? "",
          }),
        ),
        aliases: aliases.map((a) =>
          create(MailAliasSchema, { source: a.source, targets: targetList(a.targets), active: a.active }),
        ),
        tls: create(TlsMaterialSchema, {
          certificateChainPem: tls.certificateChainPem,
          privateKeyPem: tls.privateKeyPem,
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
