// Every path the agent manages on a vnode. With a private `--root` (tests, several vnodes on one
// machine) everything lives under it; root "/" means the real system paths. Nothing else in the
// agent builds a mail path by hand, so a reader finds the whole on-disk layout here.
import { createHash } from "node:crypto";
import { join, resolve } from "node:path";

export interface VnodePaths {
  readonly root: string;
  /** True when root is "/": stock Debian files (postfix-files, dynamicmaps.cf) stay untouched. */
  readonly isSystemRoot: boolean;
  // Postfix
  readonly postfixDir: string;
  readonly postfixMainCf: string;
  readonly postfixMasterCf: string;
  readonly postfixQueueDir: string;
  readonly postfixDataDir: string;
  readonly postfixPidFile: string;
  readonly postfixLogDir: string;
  readonly postfixLog: string;
  /** A sqlite map definition file in the Postfix config dir, e.g. postfixMap("virtual-domains"). */
  postfixMap(name: string): string;
  // Dovecot
  readonly dovecotDir: string;
  readonly dovecotConf: string;
  readonly dovecotSqlConf: string;
  readonly dovecotSieveDir: string;
  readonly dovecotSieveBefore: string;
  readonly dovecotBaseDir: string;
  readonly dovecotStateDir: string;
  readonly dovecotPidFile: string;
  readonly dovecotLog: string;
  readonly dovecotInstanceName: string;
  readonly dovecotLmtpSocket: string;
  readonly dovecotAuthSocket: string;
  readonly dovecotQuotaStatusSocket: string;
  // Agent state
  readonly stateDir: string;
  readonly lookupDb: string;
  readonly manifest: string;
  readonly stagingDir: string;
  readonly backupDir: string;
  // TLS
  readonly tlsDir: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  /** Key followed by the chain in one file: what Postfix reads (see tls-files.ts). */
  readonly tlsKeyAndChain: string;
  // Mail (NetServa layout: /srv/<domain>/msg/<user>/Maildir)
  readonly mailRoot: string;
  domainDir(domain: string): string;
  mailHome(domain: string, localPart: string): string;
  maildir(domain: string, localPart: string): string;
}

/** A single path segment that cannot climb out of its parent (defence in depth: names are validated before). */
function segment(value: string, what: string): string {
  if (value === "" || value === "." || value === ".." || value.includes("/") || value.includes("\0")) {
    throw new Error(`unsafe ${what} for a path: ${JSON.stringify(value)}`);
  }
  return value;
}

export function createVnodePaths(root: string): VnodePaths {
  const base = resolve(root);
  const isSystemRoot = base === "/";
  const at = (...parts: string[]): string => join(base, ...parts);
  const postfixDir = at("etc/postfix");
  const postfixQueueDir = at("var/spool/postfix");
  const dovecotDir = at("etc/dovecot");
  const dovecotBaseDir = at("run/dovecot");
  const stateDir = at("var/lib/netserva-mail");
  const tlsDir = at("etc/netserva-mail/tls");
  const mailRoot = at("srv");
  const domainDir = (domain: string): string => join(mailRoot, segment(domain, "domain"));
  const mailHome = (domain: string, localPart: string): string =>
    join(domainDir(domain), "msg", segment(localPart, "local part"));
  return {
    root: base,
    isSystemRoot,
    postfixDir,
    postfixMainCf: join(postfixDir, "main.cf"),
    postfixMasterCf: join(postfixDir, "master.cf"),
    postfixQueueDir,
    postfixDataDir: at("var/lib/postfix"),
    postfixPidFile: join(postfixQueueDir, "pid/master.pid"),
    postfixLogDir: at("var/log/netserva-mail"),
    postfixLog: at("var/log/netserva-mail/postfix.log"),
    postfixMap: (name: string) => join(postfixDir, `sqlite-${segment(name, "map name")}.cf`),
    dovecotDir,
    dovecotConf: join(dovecotDir, "dovecot.conf"),
    dovecotSqlConf: join(dovecotDir, "dovecot-sql.conf.ext"),
    dovecotSieveDir: join(dovecotDir, "sieve"),
    dovecotSieveBefore: join(dovecotDir, "sieve/netserva-before.sieve"),
    dovecotBaseDir,
    dovecotStateDir: at("var/lib/dovecot"),
    dovecotPidFile: join(dovecotBaseDir, "master.pid"),
    dovecotLog: at("var/log/netserva-mail/dovecot.log"),
    // A private root gets its own instance name so `doveadm -i` and logs never mix it with the host's.
    dovecotInstanceName: isSystemRoot
      ? "dovecot"
      : `ns-${createHash("sha256").update(base).digest("hex").slice(0, 10)}`,
    dovecotLmtpSocket: join(dovecotBaseDir, "lmtp"),
    dovecotAuthSocket: join(dovecotBaseDir, "auth-postfix"),
    dovecotQuotaStatusSocket: join(dovecotBaseDir, "quota-status"),
    stateDir,
    // Its own directory: WAL readers must be able to create/write -shm there (lookup-store.ts).
    lookupDb: join(stateDir, "lookup", "sysadm.db"),
    manifest: join(stateDir, "manifest.json"),
    stagingDir: join(stateDir, "staging"),
    backupDir: join(stateDir, "backup"),
    tlsDir,
    tlsCert: join(tlsDir, "mail.crt"),
    tlsKey: join(tlsDir, "mail.key"),
    tlsKeyAndChain: join(tlsDir, "mail.pem"),
    mailRoot,
    domainDir,
    mailHome,
    maildir: (domain: string, localPart: string) => join(mailHome(domain, localPart), "Maildir"),
  };
}
