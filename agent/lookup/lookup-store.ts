// The agent's writer for the sysadm lookup DB. Every change is a handful of indexed, prepared
// statements inside one transaction, so it costs the same at 100 or 100,000 mailboxes; the
// digest is kept up to date incrementally (XOR of row hashes) for the same reason.
import { chmodSync, chownSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { DesiredState, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { prepareSchema } from "./schema.ts";
import { EMPTY_DIGEST, aliasRow, domainRow, hashAlias, hashDomain, hashMailbox, mailboxRow, xorHex } from "./rows.ts";
import { createLookupWriter, type LookupEntry } from "./lookup-writer.ts";
import { checkAddress, checkAliasSource, checkDomain } from "./names.ts";

export type { LookupEntry } from "./lookup-writer.ts";

export interface LookupStoreOptions {
  readonly path: string;
  /** Owner of the mail files, written into every row (Dovecot's userdb uid/gid). */
  readonly mailUid?: number;
  readonly mailGid?: number;
  /** Home directory of a mailbox; defaults to /srv/<domain>/msg/<local>. */
  readonly mailHome?: (domain: string, local: string) => string;
  /** Group that may read the DB (Postfix's lookups run as `postfix`); file mode 0640. */
  readonly readerGid?: number;
}

export interface LookupResult {
  /** Human-readable diff: "+ mailbox a@x", "~ mailbox a@x: pass", "- alias @x". */
  readonly diff: string[];
  readonly entries: LookupEntry[];
}

export interface LookupStore {
  applyChanges(changes: readonly StateChange[], opts?: { dryRun?: boolean }): LookupResult;
  replaceAll(state: DesiredState, opts?: { dryRun?: boolean }): LookupResult;
  digest(): string;
  /** Full O(rows) recomputation; differs from digest() only if someone edited the DB by hand. */
  recomputeDigest(): string;
  /** Whether the domain exists (any active state); used to plan reloads. */
  hasDomain(domain: string): boolean;
  close(): void;
}

export function openLookupStore(options: LookupStoreOptions): LookupStore {
  mkdirSync(dirname(options.path), { recursive: true });
  const db = new DatabaseSync(options.path);
  prepareSchema(db);
  if (options.readerGid !== undefined) {
    chownSync(options.path, 0, options.readerGid);
    chmodSync(options.path, 0o640);
  }
  const writer = createLookupWriter(db, {
    uid: options.mailUid ?? 0,
    gid: options.mailGid ?? 0,
    home: options.mailHome ?? ((domain, local) => `/srv/${domain}/msg/${local}`),
  });
  // The digest lives in the DB (meta) and is re-read in each transaction, so a second writer
  // (another agent process, a restart) never leaves this one with a stale value.
  const loadDigest = db.prepare("SELECT value FROM meta WHERE key = 'digest'");
  const saveDigest = db.prepare("INSERT INTO meta(key, value) VALUES('digest', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  const storedDigest = (): string | undefined => (loadDigest.get() as { value: string } | undefined)?.value;
  if (storedDigest() === undefined) saveDigest.run(recompute());

  function recompute(): string {
    let d = EMPTY_DIGEST;
    for (const r of db.prepare("SELECT domain, active FROM vhosts").iterate() as Iterable<{ domain: string; active: number }>) {
      d = xorHex(d, hashDomain(r));
    }
    const mailboxes = db.prepare("SELECT user, pass, active, quota, sieve, name FROM vmails").iterate();
    for (const r of mailboxes as Iterable<{ user: string; pass: string; active: number; quota: number; sieve: string; name: string }>) {
      d = xorHex(d, hashMailbox(r));
    }
    for (const r of db.prepare("SELECT source, target, active FROM valias").iterate() as Iterable<{ source: string; target: string; active: number }>) {
      d = xorHex(d, hashAlias(r));
    }
    return d;
  }

  /** Run `work` in one write transaction; dry runs roll back. */
  function transaction(dryRun: boolean, work: () => void): LookupResult {
    writer.entries = [];
    db.exec("BEGIN IMMEDIATE");
    try {
      writer.digest = storedDigest() ?? recompute();
      work();
      if (dryRun) db.exec("ROLLBACK");
      else {
        saveDigest.run(writer.digest);
        db.exec("COMMIT");
      }
    } catch (err) {
      db.exec("ROLLBACK");
      throw NetservaError.from(err);
    }
    const entries = writer.entries;
    return { entries, diff: entries.map(formatEntry) };
  }

  return {
    applyChanges(changes, opts = {}) {
      return transaction(opts.dryRun === true, () => {
        for (const c of changes) {
          const k = c.kind;
          switch (k.case) {
            case "upsertDomain": writer.upsertDomain(domainRow(k.value)); break;
            case "deleteDomain": writer.deleteDomain(checkDomain("delete_domain", k.value)); break;
            case "upsertMailbox": writer.upsertMailbox(mailboxRow(k.value)); break;
            case "deleteMailbox": writer.deleteMailbox(checkAddress("delete_mailbox", k.value).address); break;
            case "upsertAlias": writer.upsertAlias(aliasRow(k.value)); break;
            case "deleteAlias": writer.deleteAlias(checkAliasSource("delete_alias", k.value).source); break;
            default: break; // an empty change (unknown future kind) changes nothing
          }
        }
      });
    },
    replaceAll(state, opts = {}) {
      // Validate everything before touching the DB so a bad row refuses the whole state.
      const domains = state.domains.map(domainRow);
      const mailboxes = state.mailboxes.map(mailboxRow);
      const aliases = state.aliases.map(aliasRow);
      return transaction(opts.dryRun === true, () => {
        for (const d of domains) writer.upsertDomain(d);
        for (const m of mailboxes) writer.upsertMailbox(m);
        for (const a of aliases) writer.upsertAlias(a);
        const keepMail = new Set(mailboxes.map((m) => m.user));
        const keepAlias = new Set(aliases.map((a) => a.source));
        const keepDomain = new Set(domains.map((d) => d.domain));
        for (const user of writer.allKeys("mailbox")) if (!keepMail.has(user)) writer.deleteMailbox(user);
        for (const source of writer.allKeys("alias")) if (!keepAlias.has(source)) writer.deleteAlias(source);
        for (const domain of writer.allKeys("domain")) if (!keepDomain.has(domain)) writer.deleteDomain(domain);
      });
    },
    digest: () => storedDigest() ?? recompute(),
    recomputeDigest: recompute,
    hasDomain: (domain) => writer.hasDomain(domain),
    close: () => db.close(),
  };
}

export function formatEntry(e: LookupEntry): string {
  const sign = e.op === "add" ? "+" : e.op === "remove" ? "-" : "~";
  const fields = e.fields && e.fields.length > 0 ? `: ${e.fields.join(", ")}` : "";
  return `${sign} ${e.kind} ${e.key}${fields}`;
}
