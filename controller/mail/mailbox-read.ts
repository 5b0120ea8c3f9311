// shvmail of one mailbox in one query, whatever the vnode holds: the mailbox by its unique
// address, its domain's vnode, and the aliases pointing at it (GIN index on targets). When the
// row is missing or on another vnode, the slower lookups find the exact refusal.
import type { SqlEntityManager } from "@mikro-orm/sql";
import type { ParsedAddress } from "../../common/validation/index.ts";
import type { MailboxView } from "./mail-api.ts";
import type { VnodeRef } from "./mail-lookups.ts";
import { mailboxOnVnode } from "./mailbox-change.ts";
import { mailboxView } from "./mail-views.ts";

interface Row {
  ascii: string;
  display_name: string;
  quota: string | number;
  usage: string | number | null;
  active: boolean;
  maildir: string;
  has_sieve: boolean;
  password_changed_at: Date | string;
  created_at: Date | string;
  updated_at: Date | string;
  vnode_id: number;
  password_hash: string;
  aliases: string[] | null;
}

const SQL = `select b.address as ascii, b.password_hash, b.display_name, b.quota, b.usage, b.active, b.maildir,
    b.sieve_script is not null and b.sieve_script <> '' as has_sieve,
    b.password_changed_at, b.created_at, b.updated_at, d.vnode_id,
    (select array_agg(a.source order by a.source) from mail_valias a where a.targets @> ?::jsonb) as aliases
  from mail_vboxes b join mail_vhosts d on d.id = b.domain_id where b.address = ?`;

const date = (v: Date | string): Date => (v instanceof Date ? v : new Date(v));

export async function readMailbox(em: SqlEntityManager, vnode: VnodeRef, address: ParsedAddress): Promise<MailboxView> {
  const rows = await em.execute<Row[]>(SQL, [JSON.stringify([address.ascii]), address.ascii]);
  const row = rows[0];
  if (!row || row.vnode_id !== vnode.id) await mailboxOnVnode(em, vnode, address); // throws the right refusal
  if (!row) throw new Error("mailbox vanished"); // unreachable: mailboxOnVnode threw
  return mailboxView(
    {
      ascii: row.ascii,
      passwordHash: row.password_hash,
      displayName: row.display_name,
      quota: Number(row.quota),
      usage: row.usage === null ? null : Number(row.usage),
      active: row.active,
      maildir: row.maildir,
      sieveScript: row.has_sieve ? "(set)" : null,
      passwordChangedAt: date(row.password_changed_at),
      createdAt: date(row.created_at),
      updatedAt: date(row.updated_at),
    },
    vnode.name,
    row.aliases ?? [],
  );
}
