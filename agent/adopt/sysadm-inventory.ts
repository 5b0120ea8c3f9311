// Reads an existing NetServa vnode's sysadm DB READ-ONLY (node:sqlite, readOnly) and its daemon
// configs, for adoption: domains (uid, gid, active), mailboxes (address, hash as stored, quota
// where the layout has one, home, uid, gid, active), aliases (catch-alls are "@domain"). Nothing
// here writes, validates against our rules (the controller decides what it refuses) or logs a
// hash. A clear-text password column is never selected: it is only named in a warning.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { NetservaError } from "../../common/errors.ts";
import { storedScheme } from "../../common/password/stored-scheme.ts";
import type { VnodePaths } from "../paths.ts";
import { FIELDS, REQUIRED, TABLES, ident, pickColumns, type Layout, type TableColumns } from "./sysadm-columns.ts";

export interface InventoryDomainRow {
  domain: string;
  uid: number;
  gid: number;
  active: boolean;
}
export interface InventoryMailboxRow {
  address: string;
  passwordHash: string;
  scheme: string;
  weak: boolean;
  hasQuota: boolean;
  quotaBytes: bigint;
  home: string;
  uid: number;
  gid: number;
  active: boolean;
}
export interface InventoryAliasRow {
  source: string;
  targets: string[];
  active: boolean;
}
export interface InventoryFileRow {
  path: string;
  exists: boolean;
  sha256: string;
  content: string;
}
export interface Inventory {
  sysadmDb: string;
  layout: Layout;
  domains: InventoryDomainRow[];
  mailboxes: InventoryMailboxRow[];
  aliases: InventoryAliasRow[];
  files: InventoryFileRow[];
  warnings: string[];
  columns: string[];
}

/** Config files larger than this are reported by digest only. */
const MAX_FILE_BYTES = 1024 * 1024;

type Row = Record<string, unknown>;

const text = (v: unknown): string => (typeof v === "string" ? v : v === null || v === undefined ? "" : String(v));
const int = (v: unknown, fallback: number): number => {
  const n = typeof v === "bigint" ? Number(v) : typeof v === "number" ? v : Number.parseInt(text(v), 10);
  return Number.isSafeInteger(n) && n >= 0 ? n : fallback;
};
/** NetServa writes 0/1; some tools wrote 't'/'f' or 'yes'/'no'. Absent column = active. */
const flag = (v: unknown): boolean => {
  if (v === undefined || v === null) return true;
  const s = text(v).trim().toLowerCase();
  return !(s === "0" || s === "f" || s === "false" || s === "no" || s === "n" || s === "");
};
/** Maildir column (domains layout) → the home: its parent when it ends in /Maildir. */
const homeOf = (value: string): string => {
  const trimmed = value.replace(/\/+$/, "");
  return /\/Maildir$/.test(trimmed) ? dirname(trimmed) : trimmed;
};

function readFile(path: string): InventoryFileRow {
  if (!existsSync(path)) return { path, exists: false, sha256: "", content: "" };
  const data = readFileSync(path);
  return {
    path,
    exists: true,
    sha256: createHash("sha256").update(data).digest("hex"),
    content: statSync(path).size <= MAX_FILE_BYTES ? data.toString("utf8") : "",
  };
}

export function daemonFiles(paths: VnodePaths): InventoryFileRow[] {
  return [paths.postfixMainCf, paths.postfixMasterCf, paths.dovecotConf].map(readFile);
}

function tablesOf(db: DatabaseSync): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const names = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as Row[];
  for (const { name } of names) {
    const table = text(name);
    const cols = db.prepare(`PRAGMA table_info(${ident(table)})`).all() as Row[];
    out.set(
      table.toLowerCase(),
      cols.map((c) => text(c["name"])),
    );
  }
  return out;
}

function selectAll(db: DatabaseSync, cols: TableColumns): Row[] {
  const picked = Object.entries(cols.pick);
  const list = picked.map(([field, column]) => `${ident(column)} AS ${ident(field)}`).join(", ");
  return db.prepare(`SELECT ${list} FROM ${ident(cols.table)}`).all() as Row[];
}

export function readSysadmInventory(sysadmDb: string, paths: VnodePaths): Inventory {
  if (!existsSync(sysadmDb))
    throw new NetservaError("not_found", `no NetServa sysadm database at ${sysadmDb}: give its path with --sysadm-db`);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(sysadmDb, { readOnly: true });
  } catch (error) {
    throw new NetservaError("failed_precondition", `cannot open ${sysadmDb} read-only: ${String(error)}`);
  }
  try {
    db.exec("PRAGMA query_only = ON");
    const tables = tablesOf(db);
    const layout: Layout | undefined = tables.has("vmails")
      ? "vhosts"
      : tables.has("mailboxes")
        ? "domains"
        : undefined;
    if (!layout)
      throw new NetservaError(
        "failed_precondition",
        `${sysadmDb} has neither vmails (NetServa sysadm) nor mailboxes: not a sysadm database this agent reads`,
      );
    const names = TABLES[layout];
    const warnings: string[] = [];
    const columns: string[] = [];
    const pick = (kind: "domains" | "mailboxes" | "aliases"): TableColumns | undefined => {
      const table = names[kind];
      const have = tables.get(table);
      if (!have) {
        warnings.push(`no ${table} table: nothing of that kind imported`);
        return undefined;
      }
      const cols = pickColumns(table, have, FIELDS[kind]);
      for (const c of cols.clearText)
        warnings.push(
          `column ${table}.${c} holds clear-text passwords: it was not read; drop it (ALTER TABLE ${table} DROP COLUMN ${c})`,
        );
      const missing = REQUIRED[kind].filter((f) => cols.pick[f] === undefined);
      if (missing.length > 0)
        throw new NetservaError(
          "failed_precondition",
          `${sysadmDb}: table ${table} has no column for ${missing.join(", ")} (columns: ${have.join(", ")})`,
        );
      for (const [field, column] of Object.entries(cols.pick)) columns.push(`${table}.${column} → ${field}`);
      return cols;
    };

    const domainCols = pick("domains");
    const domains: InventoryDomainRow[] = domainCols
      ? selectAll(db, domainCols).map((r) => ({
          domain: text(r["domain"]).trim(),
          uid: int(r["uid"], 0),
          gid: int(r["gid"], 0),
          active: flag(r["active"]),
        }))
      : [];
    const byDomain = new Map(domains.map((d) => [d.domain.toLowerCase(), d]));

    const mailboxCols = pick("mailboxes");
    if (mailboxCols && mailboxCols.pick["quota"] === undefined)
      warnings.push(`${mailboxCols.table} has no quota column: mailboxes imported without a quota`);
    const mailboxes: InventoryMailboxRow[] = mailboxCols
      ? selectAll(db, mailboxCols).map((r) => {
          const address = text(r["address"]).trim();
          const hash = text(r["hash"]);
          const owner = byDomain.get(address.slice(address.lastIndexOf("@") + 1).toLowerCase());
          const quota = r["quota"];
          const { scheme, weak } = storedScheme(hash);
          return {
            address,
            passwordHash: hash,
            scheme,
            weak,
            hasQuota: quota !== undefined && quota !== null,
            quotaBytes: BigInt(int(quota, 0)),
            home: homeOf(text(r["home"])),
            // A row without its own uid/gid takes its domain's (NetServa's per-domain owner).
            uid: int(r["uid"], owner?.uid ?? 0),
            gid: int(r["gid"], owner?.gid ?? 0),
            active: flag(r["active"]),
          };
        })
      : [];

    const aliasCols = pick("aliases");
    const aliases: InventoryAliasRow[] = aliasCols
      ? selectAll(db, aliasCols).map((r) => ({
          source: text(r["source"]).trim(),
          targets: text(r["target"])
            .split(/[,\s]+/)
            .map((t) => t.trim())
            .filter((t) => t !== ""),
          active: flag(r["active"]),
        }))
      : [];

    return { sysadmDb, layout, domains, mailboxes, aliases, files: daemonFiles(paths), warnings, columns };
  } finally {
    db.close();
  }
}
