// The three stacks scripts/bench-mail compares, each in its own network namespace:
// - bare: Debian's default Postfix + Dovecot with only what it takes to deliver (static lookups,
//   no restrictions, no quota, no Sieve, no TLS);
// - hand: the expert's hand-written configuration with every guarantee the rendered one gives
//   (templates in scripts/bench-mail.d/hand/, shown line by line in the README) on a copy of
//   the rendered vnode's sysadm.db;
// - rendered: the agent's own render and apply (createMailHost, as the agent runs it).
// All keep Postfix's queue fsync and Dovecot's default mail_fsync (optimized).
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { DatabaseSync } from "node:sqlite";
import { create } from "@bufbuild/protobuf";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { generateKeyPairSync } from "node:crypto";
import { createRspamdPaths } from "../../agent/rspamd/paths.ts";
import { lookupUser } from "../../agent/mail/vmail-user.ts";
import { createTestNetns, type TestNetns } from "../../test/helpers/netns.ts";
import { removeNetnsEtc, writeNetnsResolvConf } from "../../test/helpers/intervnode-net.ts";
import type { SharedCpu } from "./cpu.ts";
import { createMailVnode, hashPassword, MAIL_HOSTNAME, type MailVnode } from "../../test/helpers/mail-vnode.ts";

export interface Stack {
  readonly name: string;
  readonly ns: TestNetns;
  /** The recipient the load goes to and the folder its messages land in. */
  readonly to: string;
  readonly newDir: string;
  readonly postfixLog: string;
  /** Dovecot's configuration file, for doveconf. */
  readonly dovecotConf: string;
  /** A daemon in another namespace that works for this stack too (the shared Rspamd). */
  readonly sharedCpu?: SharedCpu;
  /** The CA of the stack's certificate (each rendered vnode has its own), when it has TLS. */
  readonly ca?: string;
  /** The log of the Rspamd this stack's milter asks (to count DKIM signatures), when it has one. */
  readonly rspamdLog?: string;
}

import type { OnCleanup } from "./cleanups.ts";
export type { OnCleanup };

export const DOMAIN = "bench.test";
export const LOAD_USER = `load@${DOMAIN}`;
/** A mailbox whose quota is smaller than any message: RCPT with SIZE= must get 552. */
export const FULL_USER = `full@${DOMAIN}`;
export const PASSWORD = "Bench-mail-pass-1";
const exec = promisify(execFile);
const HAND_DIR = join(import.meta.dirname, "hand");

const countFiles = (dir: string): number => (existsSync(dir) ? readdirSync(dir).length : 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(probe: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (probe()) return;
    await sleep(25);
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

function users(): { vmail: { uid: number; gid: number }; postfix: { uid: number; gid: number } } {
  const vmail = lookupUser("vmail");
  const postfix = lookupUser("postfix");
  if (!vmail || !postfix) throw new Error("the vmail and postfix users must exist (the agent creates vmail)");
  return { vmail, postfix };
}

/**
 * Every namespace of the bench gets the same resolver: /etc/netns/<ns>/resolv.conf naming the
 * host side of its own veth, where the bench's PowerDNS answers (relay.ts). `ip netns exec`
 * bind-mounts it over /etc/resolv.conf for what it starts, so it must exist before the daemons.
 */
export function useBenchResolver(ns: TestNetns, onCleanup: OnCleanup): void {
  writeNetnsResolvConf(ns, ns.hostAddress);
  onCleanup(`resolver of ${ns.name}`, () => removeNetnsEtc(ns));
}

async function benchNamespace(tag: string, onCleanup: OnCleanup, resolver = true): Promise<TestNetns> {
  const ns = await createTestNetns(tag);
  onCleanup(`namespace ${ns.name}`, () => ns.destroy());
  if (resolver) useBenchResolver(ns, onCleanup);
  return ns;
}

/** What a private Postfix root needs from the package (queue layout, map types, scripts). */
function copyPostfixMeta(conf: string, queue: string, chroot: false | TestNetns): void {
  for (const f of [
    "postfix-files",
    "postfix-files.d",
    "dynamicmaps.cf",
    "dynamicmaps.cf.d",
    "postfix-script",
    "post-install",
  ])
    if (existsSync(join("/etc/postfix", f))) cpSync(join("/etc/postfix", f), join(conf, f), { recursive: true });
  if (!chroot) return;
  // Debian's chroot gets the files its init script copies into it; resolv.conf as the
  // namespace sees it (the bench's resolver), as the init script run inside it would copy.
  mkdirSync(join(queue, "etc"), { recursive: true });
  for (const f of ["services", "hosts", "host.conf", "nsswitch.conf", "resolv.conf", "localtime"]) {
    const netnsCopy = join("/etc/netns", chroot.name, f);
    const from = existsSync(netnsCopy) ? netnsCopy : join("/etc", f);
    if (existsSync(from) && statSync(from).isFile()) copyFileSync(from, join(queue, "etc", f));
  }
}

async function startDaemons(
  ns: TestNetns,
  conf: string,
  dovecotConf: string,
  queue: string,
  lmtpSocket: string,
  onCleanup: OnCleanup,
): Promise<void> {
  // `postfix start` runs the fatal checks itself (a separate `postfix check` doubles the
  // ~15 postconf runs, tens of seconds on a loaded machine).
  await ns.run("postfix", ["-c", conf, "start"]);
  onCleanup(`postfix ${conf}`, async () => void (await ns.run("postfix", ["-c", conf, "stop"]).catch(() => undefined)));
  await until(() => existsSync(join(queue, "private")), 10_000, "the queue's private/");
  await ns.run("dovecot", ["-c", dovecotConf]);
  onCleanup(
    `dovecot ${dovecotConf}`,
    async () => void (await ns.run("dovecot", ["-c", dovecotConf, "stop"]).catch(() => undefined)),
  );
  await until(() => existsSync(lmtpSocket), 10_000, "Dovecot's LMTP socket");
}

/**
 * Debian's main.cf.debian and master.cf.dist (chroot y) plus the minimum to deliver. With `tls`
 * (bench-mail), also master.cf.dist's own commented-out submission service switched on (STARTTLS
 * required, SASL by Dovecot with any password, relay for the authenticated client), so outbound
 * relay is measured with the same client as the other stacks, and the bench's resolver.
 */
export async function startBare(workDir: string, onCleanup: OnCleanup, tls?: MailVnode["tls"]): Promise<Stack> {
  const ns = await benchNamespace("bmbare", onCleanup, tls !== undefined);
  const { vmail, postfix } = users();
  const root = join(workDir, "bare");
  const conf = join(root, "etc/postfix");
  const queue = join(root, "var/spool/postfix");
  const data = join(root, "var/lib/postfix");
  const logs = join(root, "var/log");
  const mail = join(root, "mail");
  for (const d of [
    conf,
    queue,
    data,
    logs,
    mail,
    join(root, "etc/dovecot"),
    join(root, "run"),
    join(root, "var/lib/dovecot"),
    join(root, "tls"),
  ])
    mkdirSync(d, { recursive: true, mode: 0o755 });
  chownSync(data, postfix.uid, postfix.gid);
  chownSync(mail, vmail.uid, vmail.gid);
  copyPostfixMeta(conf, queue, ns);
  // smtpd reads its key and chain before it enters the chroot.
  if (tls) writeFileSync(join(root, "tls/mail.pem"), tls.keyPem + tls.certChainPem, { mode: 0o600 });
  const to = `user@${DOMAIN}`;
  writeFileSync(
    join(conf, "main.cf"),
    [
      readFileSync("/usr/share/postfix/main.cf.debian", "utf8").trimEnd(),
      "# --- the minimum to run as a private instance and deliver to one maildir over Dovecot LMTP",
      `myhostname = ${MAIL_HOSTNAME}`,
      "inet_protocols = ipv4",
      `inet_interfaces = ${ns.nsAddress}`,
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      `meta_directory = ${conf}`,
      `maillog_file = ${join(logs, "postfix.log")}`,
      `maillog_file_prefixes = ${root}`,
      "alias_maps =",
      `virtual_mailbox_domains = ${DOMAIN}`,
      `virtual_mailbox_maps = inline:{ ${to}=ok }`,
      "virtual_transport = lmtp:unix:private/dovecot-lmtp",
      "",
    ].join("\n"),
  );
  const submission = tls
    ? [
        "# --- master.cf.dist's submission block, uncommented: TLS required, SASL, relay when authenticated",
        "submission inet n       -       y       -       -       smtpd",
        "  -o syslog_name=postfix/submission",
        "  -o smtpd_tls_security_level=encrypt",
        `  -o smtpd_tls_chain_files=${join(root, "tls/mail.pem")}`,
        "  -o smtpd_sasl_auth_enable=yes",
        "  -o smtpd_sasl_type=dovecot",
        "  -o smtpd_sasl_path=private/auth",
        "  -o smtpd_tls_auth_only=yes",
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject",
      ]
    : [];
  writeFileSync(
    join(conf, "master.cf"),
    [readFileSync("/usr/share/postfix/master.cf.dist", "utf8").trimEnd(), ...submission, ""].join("\n"),
  );
  const dovecotConf = join(root, "etc/dovecot/dovecot.conf");
  writeFileSync(
    dovecotConf,
    [
      "protocols = lmtp",
      `base_dir = ${join(root, "run/dovecot")}`,
      `state_dir = ${join(root, "var/lib/dovecot")}`,
      `instance_name = nsm-bench-bare-${process.pid}`,
      `log_path = ${join(logs, "dovecot.log")}`,
      "ssl = no",
      `first_valid_uid = ${vmail.uid}`,
      "mail_location = maildir:~/Maildir",
      "passdb {",
      "  driver = static",
      "  args = nopassword=y",
      "}",
      "userdb {",
      "  driver = static",
      `  args = uid=${vmail.uid} gid=${vmail.gid} home=${mail}/%n`,
      "}",
      "service lmtp {",
      `  unix_listener ${join(queue, "private/dovecot-lmtp")} {`,
      "    user = postfix",
      "    group = postfix",
      "    mode = 0600",
      "  }",
      "}",
      "service auth {",
      `  unix_listener ${join(queue, "private/auth")} {`,
      "    user = postfix",
      "    group = postfix",
      "    mode = 0660",
      "  }",
      "}",
      "",
    ].join("\n"),
  );
  await startDaemons(ns, conf, dovecotConf, queue, join(queue, "private/dovecot-lmtp"), onCleanup);
  return {
    name: "bare",
    ns,
    to,
    newDir: join(mail, "user/Maildir/new"),
    postfixLog: join(logs, "postfix.log"),
    dovecotConf,
    ...(tls ? { ca: tls.caPem } : {}),
  };
}

/** Fill a template of scripts/bench-mail.d/hand/; every @NAME@ must be known. */
function fill(file: string, values: Record<string, string>): string {
  return readFileSync(join(HAND_DIR, file), "utf8").replace(/@([A-Z_]+)@/g, (_, k: string) => {
    const v = values[k];
    if (v === undefined) throw new Error(`${file}: no value for @${k}@`);
    return v;
  });
}

export const HAND_FILES = {
  postfix: ["main.cf", "master.cf", "domains.cf", "mailboxes.cf", "aliases.cf", "mailbox-self.cf", "sender-login.cf"],
  dovecot: ["dovecot.conf", "dovecot-sql.conf.ext"],
} as const;

export interface HandVariant {
  /** Shown in the table, e.g. "hand - quota-status". */
  readonly name: string;
  /** Lines appended to main.cf (a later assignment wins) and to dovecot.conf. */
  readonly mainCf?: readonly string[];
  readonly dovecot?: readonly string[];
  /** Another global Sieve script from scripts/bench-mail.d/hand/ instead of before.sieve. */
  readonly sieveBefore?: string;
  /** A daemon of another namespace this stack uses (the rendered vnode's Rspamd). */
  readonly sharedCpu?: SharedCpu;
}

/**
 * The hand-written stack on a copy of the rendered vnode's sysadm.db (the same rows, the
 * homes moved under this root), with its own copy of the rendered vnode's TLS key and chain.
 */
export async function startHand(
  workDir: string,
  rendered: MailVnode,
  variant: HandVariant,
  onCleanup: OnCleanup,
): Promise<Stack> {
  const tag = `bmh${readdirSync(workDir).filter((d) => d.startsWith("hand")).length}`;
  const ns = await benchNamespace(tag, onCleanup);
  const { vmail, postfix } = users();
  const root = join(workDir, `hand-${tag}`);
  const conf = join(root, "etc/postfix");
  const queue = join(root, "var/spool/postfix");
  const data = join(root, "var/lib/postfix");
  const dovecotDir = join(root, "etc/dovecot");
  const lookupDir = join(root, "lookup");
  for (const d of [
    conf,
    queue,
    data,
    dovecotDir,
    lookupDir,
    join(root, "var/log"),
    join(root, "run"),
    join(root, "var/lib/dovecot"),
    join(root, "tls"),
  ])
    mkdirSync(d, { recursive: true, mode: 0o755 });
  chownSync(data, postfix.uid, postfix.gid);
  copyPostfixMeta(conf, queue, false);
  // TLS: one key+chain file for Postfix, cert and key for Dovecot.
  writeFileSync(join(root, "tls/mail.pem"), rendered.tls.keyPem + rendered.tls.certChainPem, { mode: 0o600 });
  writeFileSync(join(root, "tls/mail.key"), rendered.tls.keyPem, { mode: 0o600 });
  writeFileSync(join(root, "tls/mail.crt"), rendered.tls.certChainPem, { mode: 0o644 });
  // The same rows: a copy of the rendered vnode's lookup DB, homes under this root. WAL mode,
  // so the readers (Postfix as postfix, Dovecot) need to write -shm in the directory.
  const db = join(lookupDir, "sysadm.db");
  const src = new DatabaseSync(rendered.host.paths.lookupDb);
  try {
    src.prepare("VACUUM INTO ?").run(db);
  } finally {
    src.close();
  }
  const renderedHomes = dirname(dirname(dirname(rendered.host.paths.mailHome(DOMAIN, "x"))));
  const homes = join(root, "srv");
  const copy = new DatabaseSync(db);
  try {
    copy.exec("PRAGMA journal_mode=WAL");
    copy.prepare("UPDATE vmails SET home = ? || substr(home, ?)").run(homes, renderedHomes.length + 1);
    for (const row of copy.prepare("SELECT home FROM vmails").all() as Array<{ home: string }>) {
      mkdirSync(row.home, { recursive: true, mode: 0o700 });
    }
  } finally {
    copy.close();
  }
  // Every directory from srv/ down to the homes belongs to vmail (Dovecot makes the maildirs).
  chownRecursive(homes, vmail);
  chownSync(lookupDir, 0, postfix.gid);
  chmodSync(lookupDir, 0o3770);
  chownSync(db, 0, postfix.gid);
  chmodSync(db, 0o640);

  const values = {
    ROOT: root,
    ADDR: ns.nsAddress,
    HOST: MAIL_HOSTNAME,
    DB: db,
    INSTANCE: `nsm-bench-${tag}-${process.pid}`,
    VMAIL_UID: String(vmail.uid),
  };
  for (const f of HAND_FILES.postfix) writeFileSync(join(conf, f), fill(f, values));
  if (variant.mainCf?.length)
    writeFileSync(
      join(conf, "main.cf"),
      `${readFileSync(join(conf, "main.cf"), "utf8")}${variant.mainCf.join("\n")}\n`,
    );
  for (const f of HAND_FILES.dovecot) writeFileSync(join(dovecotDir, f), fill(f, values));
  if (variant.dovecot?.length)
    writeFileSync(
      join(dovecotDir, "dovecot.conf"),
      `${readFileSync(join(dovecotDir, "dovecot.conf"), "utf8")}${variant.dovecot.join("\n")}\n`,
    );
  chmodSync(join(dovecotDir, "dovecot-sql.conf.ext"), 0o640);
  // The global Sieve script, compiled once by root (vmail may not write here).
  copyFileSync(join(HAND_DIR, variant.sieveBefore ?? "before.sieve"), join(dovecotDir, "before.sieve"));
  await ns.run("sievec", ["-c", join(dovecotDir, "dovecot.conf"), join(dovecotDir, "before.sieve")]);
  const dovecotConf = join(dovecotDir, "dovecot.conf");
  await startDaemons(ns, conf, dovecotConf, queue, join(root, "run/dovecot/lmtp"), onCleanup);
  const [local = "load"] = LOAD_USER.split("@");
  return {
    name: variant.name,
    ns,
    to: LOAD_USER,
    newDir: join(homes, DOMAIN, "msg", local, "Maildir/new"),
    postfixLog: join(root, "var/log/postfix.log"),
    dovecotConf,
    ca: rendered.tls.caPem,
    ...(variant.sharedCpu ? { sharedCpu: variant.sharedCpu } : {}),
  };
}

function chownRecursive(dir: string, o: { uid: number; gid: number }): void {
  chownSync(dir, o.uid, o.gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) chownRecursive(join(dir, e.name), o);
}

/** The Rspamd options of `scripts/bench-apply` and an agent run with --filter-offline
 *  --filter-cache: no network modules, no greylisting, the shared hyperscan cache. */
const OFFLINE_FILTER = {
  disableNetworkModules: true,
  greylist: false,
  hsCacheDir: "/tmp/nsm-filter-hs-cache",
} as const;

/** The main.cf lines the agent renders for its Rspamd milter (render-main-cf.ts), for `address`. */
export const milterLines = (address: string): string[] => [
  `smtpd_milters = ${address}`,
  `non_smtpd_milters = ${address}`,
  "milter_default_action = tempfail",
  "milter_protocol = 6",
  "milter_mail_macros = i {mail_addr} {client_addr} {client_name} {auth_authen}",
];

/** The agent's own render and apply (createMailHost), with its quota and Sieve as in production. */
export async function startRendered(
  extraMailboxes: number,
  onCleanup: OnCleanup,
  keepIn?: string,
  options: { rspamd?: boolean } = {},
): Promise<{ stack: Stack; vnode: MailVnode; milterAddress?: string }> {
  const rspamd = options.rspamd === true;
  // authPenalty true: the production default (the test helper turns it off).
  const v = await createMailVnode(rspamd ? "bmrsp" : "bmrend", {
    authPenalty: true,
    ...(rspamd ? { filter: OFFLINE_FILTER } : {}),
  });
  // Before the daemons start (createMailHost starts none): they inherit the resolver's bind mount.
  useBenchResolver(v.ns, onCleanup);
  onCleanup("rendered vnode", async () => {
    // Its root goes with the teardown: --keep keeps a copy (config, logs, maildirs).
    if (keepIn) {
      const to = join(keepIn, rspamd ? "rendered-rspamd" : "rendered");
      mkdirSync(to);
      for (const d of ["etc", "var/log"]) await exec("cp", ["-a", join(v.root, d), join(to, d.replace("/", "-"))]);
    }
    await v.teardown();
  });
  const hash = await hashPassword(PASSWORD);
  const state = create(DesiredStateSchema, {
    generation: 1n,
    settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [v.ns.nsAddress], rspamdEnabled: rspamd },
    tls: { certificateChainPem: v.tls.certChainPem, privateKeyPem: v.tls.keyPem },
    domains: [{ domain: DOMAIN, active: true }],
    mailboxes: [
      { address: LOAD_USER, passwordHash: hash, active: true, quotaBytes: 10n * 1024n ** 3n },
      { address: FULL_USER, passwordHash: hash, active: true, quotaBytes: 1n },
      ...Array.from({ length: extraMailboxes }, (_, i) => ({
        address: `u${i}@${DOMAIN}`,
        passwordHash: hash,
        active: true,
        quotaBytes: 1024n ** 3n,
      })),
    ],
    aliases: [{ source: `info@${DOMAIN}`, targets: [LOAD_USER], active: true }],
    // With Rspamd, the load domain signs its outgoing mail (RSA-2048, as mail:configure-dkim
    // makes by default), so submission and relay pay for DKIM as a hoster's would.
    dkimKeys: rspamd ? [benchDkimKey()] : [],
  });
  await v.host.applyState(state);
  await v.host.start();
  const p = v.host.paths;
  await until(() => existsSync(p.dovecotLmtpSocket), 10_000, "the rendered Dovecot's LMTP socket");
  const milterSocket = join(v.root, "run/rspamd/milter.sock");
  if (rspamd) await until(() => existsSync(milterSocket), 120_000, "the rendered Rspamd's milter socket");
  const [local = "load"] = LOAD_USER.split("@");
  return {
    vnode: v,
    ...(rspamd ? { milterAddress: `unix:${milterSocket}` } : {}),
    stack: {
      name: rspamd ? "rendered+rspamd" : "rendered",
      ns: v.ns,
      to: LOAD_USER,
      newDir: join(p.maildir(DOMAIN, local), "new"),
      postfixLog: p.postfixLog,
      dovecotConf: p.dovecotConf,
      ca: v.tls.caPem,
      ...(rspamd ? { rspamdLog: createRspamdPaths(v.root).logFile } : {}),
    },
  };
}

/** An RSA-2048 DKIM key for the load domain, selector "bench". */
function benchDkimKey(): { domain: string; selector: string; algorithm: string; privateKeyPem: string } {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    domain: DOMAIN,
    selector: "bench",
    algorithm: "rsa",
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

/** How many messages the Rspamd behind `logFile` has DKIM-signed for the load domain so far. */
export function dkimSignedCount(logFile: string): number {
  if (!existsSync(logFile)) return 0;
  return readFileSync(logFile, "utf8")
    .split("\n")
    .filter((l) => l.includes(`DKIM_SIGNED(`) && l.includes(`${DOMAIN}:s=bench`)).length;
}

export { countFiles };
