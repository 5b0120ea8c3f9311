// NetServa's own Postfix and Dovecot configuration for the fixture vnode (netserva-fixture.ts),
// the way NetServa's templates set them up (resources/templates/_etc_postfix_main_sqlite.cf,
// _etc_dovecot_user-sqlite.conf): sqlite maps and Dovecot's sql driver reading the sysadm DB
// directly, the home/uid/gid of each vmails row, default_pass_scheme = SHA512-CRYPT, delivery
// over LMTP. Only what a private root needs differs from a real vnode (paths under the root, its
// own instance name, listeners on the namespace address, no TLS). Also the maildirs with old mail
// owned by each domain's uid, and the start of both daemons the way an operator would.
import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { readPostfixInstallParams } from "../../agent/postfix/meta-files.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import { lookupUser } from "../../agent/mail/vmail-user.ts";
import type { NetservaFixture } from "./netserva-fixture.ts";
import type { TestNetns } from "./netns.ts";

/** The Message-ID of the one old message each fixture mailbox holds before adoption. */
export const oldMessageId = (address: string): string => `<old-${address.replace("@", ".")}@netserva.fixture>`;

const file = (path: string, content: string, mode = 0o644): void => {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  writeFileSync(path, content, { mode });
};

/** Writes main.cf, master.cf, the three sqlite maps, dovecot.conf and user-sqlite.conf. */
export async function writeNetservaDaemons(root: string, fixture: NetservaFixture, listen: string): Promise<void> {
  const p = createVnodePaths(root);
  const db = fixture.sysadmDb;
  const install = await readPostfixInstallParams();
  const map = (name: string, query: string): void =>
    file(join(p.postfixDir, `sqlite-${name}.cf`), `dbpath = ${db}\nquery = ${query}\n`);
  map("mailbox-domains", "SELECT 1 FROM vhosts WHERE domain='%s' AND active=1");
  map("mailbox-maps", "SELECT 1 FROM vmails WHERE user='%s' AND active=1");
  map("alias-maps", "SELECT target FROM valias WHERE source='%s' AND active=1");
  file(
    p.postfixMainCf,
    [
      "# NetServa main.cf (sqlite)",
      "compatibility_level = 3.6",
      `queue_directory = ${p.postfixQueueDir}`,
      `data_directory = ${p.postfixDataDir}`,
      ...install.map(([k, v]) => `${k} = ${v}`),
      "mail_owner = postfix",
      "setgid_group = postdrop",
      "myhostname = mail.netserva.test",
      "mydestination =",
      "local_recipient_maps =",
      "alias_maps =",
      "alias_database =",
      `inet_interfaces = ${listen}`,
      "inet_protocols = ipv4",
      "mynetworks = 127.0.0.0/8",
      "smtpd_helo_required = yes",
      "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
      `virtual_mailbox_domains = sqlite:${p.postfixDir}/sqlite-mailbox-domains.cf`,
      `virtual_mailbox_maps = sqlite:${p.postfixDir}/sqlite-mailbox-maps.cf`,
      `virtual_alias_maps = sqlite:${p.postfixDir}/sqlite-alias-maps.cf`,
      `virtual_transport = lmtp:unix:${p.dovecotLmtpSocket}`,
      `maillog_file = ${p.postfixLog}`,
      `maillog_file_prefixes = ${p.postfixLogDir}`,
      "",
    ].join("\n"),
  );
  // Nothing chrooted: a private root's sockets are outside any chroot.
  file(
    p.postfixMasterCf,
    [
      "# NetServa master.cf",
      "smtp      inet  n       -       n       -       -       smtpd",
      "pickup    unix  n       -       n       60      1       pickup",
      "cleanup   unix  n       -       n       -       0       cleanup",
      "qmgr      unix  n       -       n       300     1       qmgr",
      "tlsmgr    unix  -       -       n       1000?   1       tlsmgr",
      "rewrite   unix  -       -       n       -       -       trivial-rewrite",
      "bounce    unix  -       -       n       -       0       bounce",
      "defer     unix  -       -       n       -       0       bounce",
      "trace     unix  -       -       n       -       0       bounce",
      "verify    unix  -       -       n       -       1       verify",
      "flush     unix  n       -       n       1000?   0       flush",
      "proxymap  unix  -       -       n       -       -       proxymap",
      "proxywrite unix -       -       n       -       1       proxymap",
      "smtp      unix  -       -       n       -       -       smtp",
      "relay     unix  -       -       n       -       -       smtp",
      "showq     unix  n       -       n       -       -       showq",
      "error     unix  -       -       n       -       -       error",
      "retry     unix  -       -       n       -       -       error",
      "discard   unix  -       -       n       -       -       discard",
      "lmtp      unix  -       -       n       -       -       lmtp",
      "anvil     unix  -       -       n       -       1       anvil",
      "scache    unix  -       -       n       -       1       scache",
      "postlog   unix-dgram n  -       n       -       1       postlogd",
      "",
    ].join("\n"),
  );
  const userConf = join(p.dovecotDir, "user-sqlite.conf");
  file(
    userConf,
    [
      "# NetServa user-sqlite.conf",
      "driver = sqlite",
      `connect = ${db}`,
      "default_pass_scheme = SHA512-CRYPT",
      "password_query = SELECT user, pass AS password FROM vmails WHERE user='%u' AND active=1",
      "user_query = SELECT home, uid, gid FROM vmails WHERE user='%u' AND active=1",
      "iterate_query = SELECT user FROM vmails WHERE active=1",
      "",
    ].join("\n"),
    0o600,
  );
  file(
    p.dovecotConf,
    [
      "# NetServa dovecot.conf (sqlite)",
      `instance_name = ns-netserva-${p.dovecotInstanceName}`,
      `base_dir = ${p.dovecotBaseDir}`,
      `state_dir = ${p.dovecotStateDir}`,
      `log_path = ${p.dovecotLog}`,
      "protocols = imap lmtp",
      `listen = ${listen}`,
      "ssl = no",
      "disable_plaintext_auth = no",
      "auth_mechanisms = plain login",
      "auth_username_format = %Lu",
      "first_valid_uid = 1000",
      "mail_location = maildir:~/Maildir",
      "passdb {",
      "  driver = sql",
      `  args = ${userConf}`,
      "}",
      "userdb {",
      "  driver = sql",
      `  args = ${userConf}`,
      "}",
      "service lmtp {",
      "  unix_listener lmtp {",
      "    user = postfix",
      "    group = postfix",
      "    mode = 0600",
      "  }",
      "}",
      "service auth {",
      "  unix_listener auth-userdb {",
      "    mode = 0600",
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  for (const dir of [p.postfixLogDir, p.postfixQueueDir, p.dovecotStateDir, dirname(p.dovecotBaseDir)])
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  const postfix = lookupUser("postfix");
  if (!postfix) throw new Error("no postfix user: is Postfix installed?");
  mkdirSync(p.postfixDataDir, { recursive: true, mode: 0o700 });
  chownSync(p.postfixDataDir, postfix.uid, postfix.gid);
}

/** Each mailbox's home and Maildir, owned by its domain's uid, holding one old message. */
export function seedMaildirs(fixture: NetservaFixture): void {
  const uidOf = new Map(fixture.domains.map((d) => [d.domain, d.uid]));
  for (const m of fixture.mailboxes) {
    const uid = uidOf.get(m.address.slice(m.address.indexOf("@") + 1)) ?? 0;
    mkdirSync(dirname(m.home), { recursive: true, mode: 0o755 });
    for (const dir of [
      m.home,
      join(m.home, "Maildir"),
      ...["cur", "new", "tmp"].map((s) => join(m.home, "Maildir", s)),
    ]) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      chownSync(dir, uid, uid);
    }
    const message = join(m.home, "Maildir/cur", `1700000000.M1P1.netserva:2,S`);
    writeFileSync(
      message,
      `From: someone@remote.test\r\nTo: ${m.address}\r\nSubject: old mail\r\nMessage-ID: ${oldMessageId(m.address)}\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nkept through the adoption\r\n`,
      { mode: 0o600 },
    );
    chownSync(message, uid, uid);
  }
}

/** Starts NetServa's Postfix and Dovecot in the namespace, as its scripts would. */
export async function startNetservaDaemons(ns: TestNetns, root: string): Promise<void> {
  const p = createVnodePaths(root);
  await ns.run("dovecot", ["-c", p.dovecotConf]);
  await ns.run("postfix", ["-c", p.postfixDir, "check"]);
  await ns.run("postfix", ["-c", p.postfixDir, "start"]);
}
