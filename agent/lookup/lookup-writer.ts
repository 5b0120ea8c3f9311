// Row-level upserts and deletes on the sysadm tables with prepared statements. Each call touches
// one row through a UNIQUE index (a domain delete also its own mailboxes and aliases), records
// what changed and keeps the running digest. Transactions belong to the caller (lookup-store.ts).
import type { DatabaseSync } from "node:sqlite";
import { invalid } from "../../common/errors.ts";
import type { AliasRow, DomainRow, MailboxRow } from "./rows.ts";
import { hashAlias, hashDomain, hashMailbox, xorHex } from "./rows.ts";

/** Where a mailbox lives: its domain (ascii) and local part, and its home and owner as its row has
 * them (an adopted mailbox's own, else the derived ones), for its maildir. */
export interface MailboxPlace {
  readonly domain: string;
  readonly local: string;
  readonly home: string;
  readonly uid: number;
  readonly gid: number;
  /** Home and owner came with the row (adopted): the maildir is used where it is, as it is. */
  readonly adopted: boolean;
}

export interface LookupEntry {
  readonly kind: "domain" | "mailbox" | "alias";
  readonly op: "add" | "change" | "remove";
  /** The row's key: a domain, a mailbox's ascii form, an alias source. */
  readonly key: string;
  /** For "change": the columns that differ. */
  readonly fields?: string[];
  /** Mailboxes added, changed or removed by a change (not stale rows a whole state drops). */
  readonly mailbox?: MailboxPlace;
}

interface WriterOptions {
  readonly uid: number;
  readonly gid: number;
  readonly home: (domain: string, local: string) => string;
}

export type StoredMailbox = {
  id: number;
  user: string;
  pass: string;
  active: number;
  quota: number;
  sieve: string;
  name: string;
  home: string;
  uid: number;
  gid: number;
  own: number;
};

const MAILBOX_COLUMNS = "id, user, pass, active, quota, sieve, name, home, uid, gid, own";

/** A stored row as the digest sees it: its home/uid/gid count only when they came with the row. */
export function digestRow(m: Omit<StoredMailbox, "id">) {
  return { ...m, owner: m.own === 1 ? { home: m.home, uid: m.uid, gid: m.gid } : undefined };
}
type StoredAlias = { id: number; source: string; target: string; active: number };

export function createLookupWriter(db: DatabaseSync, opts: WriterOptions) {
  const q = {
    domain: db.prepare("SELECT id, domain, active FROM vhosts WHERE domain = ?"),
    insertDomain: db.prepare("INSERT INTO vhosts(domain, uid, gid, active) VALUES(?, ?, ?, ?)"),
    updateDomain: db.prepare("UPDATE vhosts SET active = ? WHERE id = ?"),
    deleteDomain: db.prepare("DELETE FROM vhosts WHERE id = ?"),
    domainMailboxes: db.prepare(`SELECT ${MAILBOX_COLUMNS} FROM vmails WHERE hid = ?`),
    domainAliases: db.prepare("SELECT id, source, target, active FROM valias WHERE hid = ?"),
    mailbox: db.prepare(`SELECT ${MAILBOX_COLUMNS} FROM vmails WHERE user = ?`),
    insertMailbox: db.prepare(
      "INSERT INTO vmails(hid, user, pass, home, uid, gid, active, quota, sieve, name, own) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    updateMailbox: db.prepare(
      "UPDATE vmails SET pass = ?, active = ?, quota = ?, sieve = ?, name = ?, home = ?, uid = ?, gid = ?, own = ? WHERE id = ?",
    ),
    deleteMailbox: db.prepare("DELETE FROM vmails WHERE id = ?"),
    alias: db.prepare("SELECT id, source, target, active FROM valias WHERE source = ?"),
    insertAlias: db.prepare("INSERT INTO valias(hid, source, target, active) VALUES(?, ?, ?, ?)"),
    updateAlias: db.prepare("UPDATE valias SET target = ?, active = ? WHERE id = ?"),
    deleteAlias: db.prepare("DELETE FROM valias WHERE id = ?"),
    keys: {
      domain: db.prepare("SELECT domain AS k FROM vhosts"),
      mailbox: db.prepare("SELECT user AS k FROM vmails"),
      alias: db.prepare("SELECT source AS k FROM valias"),
    },
  };

  const state = { digest: "", entries: [] as LookupEntry[] };
  const record = (e: LookupEntry): void => void state.entries.push(e);
  const mix = (hash: string): void => void (state.digest = xorHex(state.digest, hash));

  function domainId(domain: string, field: string): number {
    const row = q.domain.get(domain) as { id: number } | undefined;
    if (!row) throw invalid(field, `domain ${domain} is not hosted on this vnode`);
    return row.id;
  }

  /** The row's home/uid/gid as stored: its own (adopted) or the derived ones. */
  function placed(r: MailboxRow): { home: string; uid: number; gid: number; own: number } {
    if (r.owner) return { ...r.owner, own: 1 };
    return { home: opts.home(r.domain, r.local), uid: opts.uid, gid: opts.gid, own: 0 };
  }

  function placeOf(m: StoredMailbox): MailboxPlace {
    const at = m.user.lastIndexOf("@");
    const adopted = m.own === 1;
    return { domain: m.user.slice(at + 1), local: m.user.slice(0, at), home: m.home, uid: m.uid, gid: m.gid, adopted };
  }

  function changed(before: Record<string, unknown>, after: Record<string, unknown>, cols: string[]): string[] {
    return cols.filter((c) => before[c] !== after[c]);
  }

  return Object.assign(state, {
    hasDomain: (domain: string): boolean => q.domain.get(domain) !== undefined,
    hasMailbox: (user: string): boolean => q.mailbox.get(user) !== undefined,
    allKeys(kind: "domain" | "mailbox" | "alias"): string[] {
      return (q.keys[kind].all() as { k: string }[]).map((r) => r.k);
    },
    upsertDomain(r: DomainRow): void {
      const cur = q.domain.get(r.domain) as { id: number; domain: string; active: number } | undefined;
      if (!cur) {
        q.insertDomain.run(r.domain, opts.uid, opts.gid, r.active);
        mix(hashDomain(r));
        record({ kind: "domain", op: "add", key: r.domain });
      } else if (cur.active !== r.active) {
        q.updateDomain.run(r.active, cur.id);
        mix(hashDomain(cur));
        mix(hashDomain(r));
        record({ kind: "domain", op: "change", key: r.domain, fields: ["active"] });
      }
    },
    deleteDomain(domain: string): void {
      const cur = q.domain.get(domain) as { id: number; domain: string; active: number } | undefined;
      if (!cur) return;
      // The cascade removes the domain's rows; take them out of the digest and the diff first.
      for (const m of q.domainMailboxes.all(cur.id) as StoredMailbox[]) {
        mix(hashMailbox(digestRow(m)));
        // The key is `${local}@${domain}` as this writer stored it from a checked row.
        record({ kind: "mailbox", op: "remove", key: m.user, mailbox: placeOf(m) });
      }
      for (const a of q.domainAliases.all(cur.id) as StoredAlias[]) {
        mix(hashAlias(a));
        record({ kind: "alias", op: "remove", key: a.source });
      }
      q.deleteDomain.run(cur.id);
      mix(hashDomain(cur));
      record({ kind: "domain", op: "remove", key: domain });
    },
    upsertMailbox(r: MailboxRow): void {
      const cur = q.mailbox.get(r.user) as StoredMailbox | undefined;
      const at = placed(r);
      const mailbox: MailboxPlace = {
        domain: r.domain,
        local: r.local,
        home: at.home,
        uid: at.uid,
        gid: at.gid,
        adopted: at.own === 1,
      };
      if (!cur) {
        const hid = domainId(r.domain, "mailbox.address");
        q.insertMailbox.run(hid, r.user, r.pass, at.home, at.uid, at.gid, r.active, r.quota, r.sieve, r.name, at.own);
        mix(hashMailbox(r));
        record({ kind: "mailbox", op: "add", key: r.user, mailbox });
        return;
      }
      const fields = changed(cur, { ...r, ...at }, [
        "pass",
        "active",
        "quota",
        "sieve",
        "name",
        "home",
        "uid",
        "gid",
        "own",
      ]);
      if (fields.length === 0) return;
      q.updateMailbox.run(r.pass, r.active, r.quota, r.sieve, r.name, at.home, at.uid, at.gid, at.own, cur.id);
      mix(hashMailbox(digestRow(cur)));
      mix(hashMailbox(r));
      record({ kind: "mailbox", op: "change", key: r.user, fields, mailbox });
    },
    /** `explicit`: a delete the controller sent (its maildir goes unless kept); a stale row a
     * whole state drops is not (its maildir stays: a wrong state must not wipe mail). */
    deleteMailbox(user: string, explicit = false): void {
      const cur = q.mailbox.get(user) as StoredMailbox | undefined;
      if (!cur) return;
      q.deleteMailbox.run(cur.id);
      mix(hashMailbox(digestRow(cur)));
      record({ kind: "mailbox", op: "remove", key: user, ...(explicit ? { mailbox: placeOf(cur) } : {}) });
    },
    upsertAlias(r: AliasRow): void {
      const cur = q.alias.get(r.source) as StoredAlias | undefined;
      if (!cur) {
        q.insertAlias.run(domainId(r.domain, "alias.source"), r.source, r.target, r.active);
        mix(hashAlias(r));
        record({ kind: "alias", op: "add", key: r.source });
        return;
      }
      const fields = changed(cur, { ...r }, ["target", "active"]);
      if (fields.length === 0) return;
      q.updateAlias.run(r.target, r.active, cur.id);
      mix(hashAlias(cur));
      mix(hashAlias(r));
      record({ kind: "alias", op: "change", key: r.source, fields });
    },
    deleteAlias(source: string): void {
      const cur = q.alias.get(source) as StoredAlias | undefined;
      if (!cur) return;
      q.deleteAlias.run(cur.id);
      mix(hashAlias(cur));
      record({ kind: "alias", op: "remove", key: source });
    },
  });
}
