// The vnode-local lookup DB in NetServa's sysadm shape, read by Postfix sqlite maps and Dovecot's
// sql driver, written only by the agent. Extended with quota, sieve, name and own columns; `hid`
// ties mailboxes and aliases to their domain as in NetServa.
import type { DatabaseSync } from "node:sqlite";

const DDL = `
CREATE TABLE IF NOT EXISTS vhosts (
  id INTEGER PRIMARY KEY,
  domain TEXT NOT NULL UNIQUE,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS vmails (
  id INTEGER PRIMARY KEY,
  hid INTEGER NOT NULL REFERENCES vhosts(id) ON DELETE CASCADE,
  user TEXT NOT NULL UNIQUE,
  pass TEXT NOT NULL,
  home TEXT NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  active INTEGER NOT NULL DEFAULT 1,
  quota INTEGER NOT NULL DEFAULT 0,
  sieve TEXT NOT NULL DEFAULT '',
  name TEXT NOT NULL DEFAULT '',
  own INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS vmails_hid ON vmails(hid);
CREATE TABLE IF NOT EXISTS valias (
  id INTEGER PRIMARY KEY,
  hid INTEGER NOT NULL REFERENCES vhosts(id) ON DELETE CASCADE,
  source TEXT NOT NULL UNIQUE,
  target TEXT NOT NULL,
  active INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS valias_hid ON valias(hid);
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;

export function prepareSchema(db: DatabaseSync): void {
  // WAL: readers (Postfix's dict_sqlite, which sets no busy timeout and dies on SQLITE_BUSY)
  // never wait for the writer. The DB lives in its own group-writable directory so readers can
  // use the -shm index (see lookup-store.ts). FULL keeps every reported commit durable: the
  // controller trusts the digest we return after a commit.
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("PRAGMA foreign_keys=ON");
  db.exec("PRAGMA busy_timeout=5000");
  db.exec("PRAGMA synchronous=FULL");
  // A 100,000-row replaceAll leaves a large -wal behind; trim it after checkpoints.
  db.exec("PRAGMA journal_size_limit=8388608");
  db.exec(DDL);
  // vmails.own (1: home/uid/gid came with the row, an adopted mailbox's): added to a DB made
  // before it; existing rows have derived values.
  const cols = db.prepare("PRAGMA table_info(vmails)").all() as Array<{ name: string }>;
  if (!cols.some((c) => c.name === "own")) db.exec("ALTER TABLE vmails ADD COLUMN own INTEGER NOT NULL DEFAULT 0");
}
