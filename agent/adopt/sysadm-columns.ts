// Which columns of a NetServa sysadm DB hold what. Real vnodes differ: NetServa 3.0's dbml has
// vhosts/vmails/valias (vmails.pass, .home, no quota); its SQL schema file has
// domains/mailboxes/aliases (mailboxes.password, .maildir, .quota; aliases.address/goto); older
// installs name the password column password/passwd/crypt and keep a clear-text copy beside it.
// Columns are chosen here by name; a clear-text column is recognised only to be reported, never
// selected.

export type Layout = "vhosts" | "domains";

export interface TableColumns {
  readonly table: string;
  /** Logical field → the column that holds it (absent: the table has none). */
  readonly pick: Readonly<Record<string, string>>;
  /** Clear-text password columns found (never read). */
  readonly clearText: readonly string[];
}

const CANDIDATES: Record<string, readonly string[]> = {
  domain: ["domain", "name"],
  uid: ["uid"],
  gid: ["gid"],
  active: ["active", "enabled"],
  address: ["user", "username", "email", "address"],
  hash: ["pass", "password", "passwd", "crypt", "password_hash", "pw"],
  home: ["home", "maildir", "path"],
  quota: ["quota", "quota_bytes"],
  source: ["source", "address", "alias"],
  target: ["target", "goto", "destination", "targets"],
};

/** Names of columns that hold passwords in clear text in the installs we know of. */
const CLEAR_TEXT = new Set([
  "clearpw",
  "clear",
  "cleartext",
  "clear_password",
  "plain_password",
  "password_plain",
  "clearpass",
]);

export function pickColumns(table: string, columns: readonly string[], fields: readonly string[]): TableColumns {
  const have = new Map(columns.map((c) => [c.toLowerCase(), c]));
  const pick: Record<string, string> = {};
  for (const field of fields) {
    const found = (CANDIDATES[field] ?? []).find(
      (name) => have.has(name) && !Object.values(pick).includes(have.get(name) ?? ""),
    );
    if (found !== undefined) pick[field] = have.get(found) ?? found;
  }
  return { table, pick, clearText: columns.filter((c) => CLEAR_TEXT.has(c.toLowerCase())) };
}

export const TABLES: Record<Layout, { domains: string; mailboxes: string; aliases: string }> = {
  vhosts: { domains: "vhosts", mailboxes: "vmails", aliases: "valias" },
  domains: { domains: "domains", mailboxes: "mailboxes", aliases: "aliases" },
};

export const FIELDS = {
  domains: ["domain", "uid", "gid", "active"],
  mailboxes: ["address", "hash", "home", "uid", "gid", "active", "quota"],
  aliases: ["source", "target", "active"],
} as const;

/** The fields a table must have to be read at all. */
export const REQUIRED = {
  domains: ["domain"],
  mailboxes: ["address", "hash", "home"],
  aliases: ["source", "target"],
} as const;

/** Double-quoted SQL identifier (names come from the DB's own schema). */
export const ident = (name: string): string => `"${name.replace(/"/g, '""')}"`;
