// A NetServa-configured vnode's data, the way NetServa 3.0 lays it out: a sysadm SQLite DB
// (vhosts/vmails/valias, `pass` hashes in mixed forms, per-domain uids, homes under /srv and, for
// an older domain, under /home) at /var/lib/sqlite/sysadm/sysadm.db under a root, plus a main.cf
// pointing Postfix at it. Passwords are derived from the address so a test can log in with them.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { sha512CryptNew } from "../../common/password/index.ts";

export const NETSERVA_DB = "var/lib/sqlite/sysadm/sysadm.db";
export const passwordOf = (address: string): string => `pw-${address}-Old1`;

export interface NetservaFixture {
  readonly sysadmDb: string;
  readonly domains: Array<{ domain: string; uid: number; active: boolean }>;
  readonly mailboxes: Array<{ address: string; scheme: string; weak: boolean; active: boolean; home: string }>;
  readonly aliases: Array<{ source: string; target: string; active: boolean }>;
}

/** Hashes through Dovecot's own tool (the forms NetServa's scripts produced over the years). */
function doveadmHash(scheme: string, password: string): string {
  return execFileSync("doveadm", ["pw", "-s", scheme, "-p", password], { encoding: "utf8" }).trim();
}

export function writeNetservaFixture(root: string, o: { domains: number; perDomain: number }): NetservaFixture {
  const sysadmDb = join(root, NETSERVA_DB);
  mkdirSync(dirname(sysadmDb), { recursive: true });
  const db = new DatabaseSync(sysadmDb);
  db.exec(`CREATE TABLE vhosts (id INTEGER PRIMARY KEY, domain TEXT UNIQUE NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, active INTEGER DEFAULT 1);
    CREATE TABLE vmails (id INTEGER PRIMARY KEY, user TEXT UNIQUE NOT NULL, pass TEXT NOT NULL, home TEXT NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL, active INTEGER DEFAULT 1, clearpw TEXT);
    CREATE TABLE valias (id INTEGER PRIMARY KEY, source TEXT UNIQUE NOT NULL, target TEXT NOT NULL, active INTEGER DEFAULT 1);`);
  const fx: NetservaFixture = { sysadmDb, domains: [], mailboxes: [], aliases: [] };
  const addBox = db.prepare(
    "INSERT INTO vmails (user, pass, home, uid, gid, active, clearpw) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const addAlias = db.prepare("INSERT INTO valias (source, target, active) VALUES (?, ?, ?)");
  // A few forms through doveadm (slow-ish), the bulk as SHA512-CRYPT (bare $6$ and prefixed).
  const forms = ["BLF-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "PLAIN-MD5"];
  db.exec("BEGIN");
  for (let d = 0; d < o.domains; d++) {
    const domain = `ns${d}.test`;
    const uid = 2000 + d;
    db.prepare("INSERT INTO vhosts (domain, uid, gid, active) VALUES (?, ?, ?, 1)").run(domain, uid, uid);
    fx.domains.push({ domain, uid, active: true });
    for (let i = 0; i < o.perDomain; i++) {
      const address = `user${i}@${domain}`;
      const password = passwordOf(address);
      const form = d === 0 && i < forms.length ? forms[i] : undefined;
      let hash: string;
      let scheme = "SHA512-CRYPT";
      if (form) {
        hash = doveadmHash(form, password);
        scheme = form;
        // NetServa's older scripts stored MD5-CRYPT without its prefix.
        if (form === "MD5-CRYPT") hash = hash.replace(/^\{MD5-CRYPT\}/, "");
      } else hash = (i % 2 === 0 ? "{SHA512-CRYPT}" : "") + sha512CryptNew(password);
      const active = !(d === 0 && i === o.perDomain - 1);
      // The last domain is an older vnode's: homes under /home.
      const home =
        d === o.domains - 1
          ? join(root, `home/u${uid}/var/${domain}/msg/user${i}`)
          : join(root, `srv/${domain}/msg/user${i}`);
      addBox.run(address, hash, home, uid, uid, active ? 1 : 0, password);
      fx.mailboxes.push({ address, scheme, weak: scheme === "MD5-CRYPT" || scheme === "PLAIN-MD5", active, home });
    }
    const alias = (source: string, target: string, active = true): void => {
      addAlias.run(source, target, active ? 1 : 0);
      fx.aliases.push({ source, target, active });
    };
    alias(`team@${domain}`, `user0@${domain},user1@${domain}`);
    alias(`out@${domain}`, "someone@remote.test");
    alias(`old@${domain}`, `user0@${domain}`, false);
    if (d === 0) alias(`@${domain}`, `user2@${domain}`);
  }
  db.exec("COMMIT");
  db.close();
  const postfix = join(root, "etc/postfix");
  mkdirSync(postfix, { recursive: true });
  writeFileSync(
    join(postfix, "main.cf"),
    "# NetServa\nvirtual_mailbox_domains = sqlite:/etc/postfix/sqlite-mailbox-domains.cf\nvirtual_mailbox_maps = sqlite:/etc/postfix/sqlite-mailbox-maps.cf\nvirtual_alias_maps = sqlite:/etc/postfix/sqlite-alias-maps.cf\n",
  );
  return fx;
}
