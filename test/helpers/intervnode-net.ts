// What vnode-to-vnode mail needs from the test network: a resolver for a namespace
// (/etc/netns/<ns>/resolv.conf, which `ip netns exec` bind-mounts over /etc/resolv.conf for the
// process it starts: it must exist before the agent, and so Postfix, starts), routes between two
// namespaces through the host (forwarding only on their two host-side veths), and an IMAP poll for
// a delivered message. Everything it creates is removed by name at teardown.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ImapFlow } from "imapflow";
import type { TestNetns } from "./netns.ts";

const exec = promisify(execFile);
const NETNS_ETC = "/etc/netns";
const OUR_PREFIX = "nsmail-";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** /etc/netns/nsmail-* left by crashed runs: their namespace is gone and their creator is dead. */
export async function removeStaleNetnsEtc(): Promise<void> {
  if (!existsSync(NETNS_ETC)) return;
  const { stdout } = await exec("ip", ["netns", "list"]);
  const live = new Set(stdout.split("\n").map((l) => l.split(" ")[0] ?? ""));
  for (const name of readdirSync(NETNS_ETC)) {
    if (!name.startsWith(OUR_PREFIX) || live.has(name)) continue;
    if (alive(Number(name.split("-")[2]))) continue;
    rmSync(join(NETNS_ETC, name), { recursive: true, force: true });
  }
}

/** Points the namespace's resolver at `nameserver` (port 53: resolv.conf has no port). */
export function writeNetnsResolvConf(ns: Pick<TestNetns, "name">, nameserver: string): void {
  if (!ns.name.startsWith(OUR_PREFIX)) throw new Error(`not a test namespace: ${ns.name}`);
  const dir = join(NETNS_ETC, ns.name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileSync(
    join(dir, "resolv.conf"),
    `# written by netserva-mail tests\nnameserver ${nameserver}\noptions timeout:2 attempts:2\n`,
    { mode: 0o644 },
  );
}

export function removeNetnsEtc(ns: Pick<TestNetns, "name">): void {
  if (!ns.name.startsWith(OUR_PREFIX)) return;
  rmSync(join(NETNS_ETC, ns.name), { recursive: true, force: true });
}

async function hostVeth(address: string): Promise<string> {
  const { stdout } = await exec("ip", ["-o", "-4", "addr", "show"]);
  const line = stdout.split("\n").find((l) => l.includes(` ${address}/`));
  const name = line?.split(/\s+/)[1]?.split("@")[0];
  if (!name) throw new Error(`no interface with ${address}`);
  return name;
}

/** Lets two test namespaces reach each other through the host: forwarding on their two host-side
 * veths only (not the host's other interfaces) and a /32 route in each namespace. Both go away
 * with the namespaces. */
export async function linkNamespaces(a: TestNetns, b: TestNetns): Promise<void> {
  for (const ns of [a, b])
    await exec("sysctl", ["-q", "-w", `net.ipv4.conf.${await hostVeth(ns.hostAddress)}.forwarding=1`]);
  await a.run("ip", ["route", "replace", `${b.nsAddress}/32`, "via", a.hostAddress]);
  await b.run("ip", ["route", "replace", `${a.nsAddress}/32`, "via", b.hostAddress]);
}

export interface ImapTarget {
  host: string;
  servername: string;
  ca: string;
  user: string;
  pass: string;
}

/** Logs in over IMAPS (993, certificate verified) and waits, polling, for a message in INBOX
 * whose raw source satisfies `match`; returns that source (CRLF line ends). */
export async function waitForImapMessage(
  t: ImapTarget,
  match: (source: string) => boolean,
  deadlineMs: number,
  what: string,
): Promise<string> {
  const client = new ImapFlow({
    host: t.host,
    port: 993,
    secure: true,
    auth: { user: t.user, pass: t.pass },
    tls: { ca: t.ca, servername: t.servername },
    logger: false,
  });
  await client.connect();
  try {
    const deadline = Date.now() + deadlineMs;
    while (Date.now() < deadline) {
      const lock = await client.getMailboxLock("INBOX");
      try {
        const uids = (await client.search({ all: true }, { uid: true })) || [];
        for (const uid of uids) {
          const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
          const source = message && message.source ? message.source.toString("utf8").replace(/\r?\n/g, "\r\n") : "";
          if (source && match(source)) return source;
        }
      } finally {
        lock.release();
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out after ${deadlineMs} ms waiting for ${what} in ${t.user}'s INBOX`);
  } finally {
    await client.logout().catch(() => undefined);
  }
}
