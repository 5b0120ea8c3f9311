// Outbound relay target for scripts/bench-mail: Postfix's smtp-sink (answers every command, keeps
// nothing) in a network namespace of its own, found the way an Internet destination is found —
// by MX, in a tiny authoritative DNS. That DNS is PowerDNS (the tests' helper) answering on port 53
// of the host side of every bench namespace's veth, which each namespace's resolv.conf names
// (stacks.ts: useBenchResolver), so every stack resolves with the same resolver and settings.
// No relayhost or transport map anywhere: the rendered config has none, and neither do the others.
import { spawn } from "node:child_process";
import { linkNamespaces } from "../../test/helpers/intervnode-net.ts";
import { createTestNetns, type TestNetns } from "../../test/helpers/netns.ts";
import { startPdns } from "../../test/helpers/pdns.ts";
import type { OnCleanup } from "./cleanups.ts";
import { useBenchResolver } from "./stacks.ts";

export const REMOTE_DOMAIN = "remote.test";
export const SINK_HOST = `mx.${REMOTE_DOMAIN}`;
/** The remote recipient of every relayed message. */
export const REMOTE_USER = `sink@${REMOTE_DOMAIN}`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** smtp-sink on port 25 of a namespace of its own; stopped by its PID at cleanup. */
export async function startSink(onCleanup: OnCleanup): Promise<TestNetns> {
  const ns = await createTestNetns("bmsink");
  onCleanup(`namespace ${ns.name}`, () => ns.destroy());
  useBenchResolver(ns, onCleanup);
  // -u: required as root (it drops to postfix after binding); backlog 1024 so a burst of
  // connections from a stack's smtp clients is never refused by the sink.
  const child = spawn(
    "ip",
    ["netns", "exec", ns.name, "smtp-sink", "-u", "postfix", "-h", SINK_HOST, `${ns.nsAddress}:25`, "1024"],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let err = "";
  child.stderr.on("data", (d: Buffer) => void (err += d.toString()));
  onCleanup("smtp-sink", () => {
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGTERM");
  });
  // Ready when port 25 in the namespace is listening (ss inside it; no connection to the sink).
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`smtp-sink exited ${child.exitCode}: ${err.trim()}`);
    const { stdout } = await ns.run("ss", ["-Hltn", `sport = :25`]);
    if (stdout.includes(`${ns.nsAddress}:25`)) return ns;
    if (Date.now() > deadline) throw new Error(`smtp-sink not listening on ${ns.nsAddress}:25 within 10 s: ${err}`);
    await sleep(50);
  }
}

/**
 * PowerDNS on the host side of every namespace given (port 53), authoritative for REMOTE_DOMAIN:
 * MX 10 SINK_HOST, SINK_HOST A the sink's address. Routes from each relaying stack to the sink
 * (forwarding on their host-side veths only). Checks, from inside each relaying namespace, that
 * its resolver finds the MX, so a relay round cannot silently wait on DNS.
 */
export async function startRelayNetwork(
  namespaces: readonly TestNetns[],
  relaying: readonly TestNetns[],
  sink: TestNetns,
  onCleanup: OnCleanup,
): Promise<void> {
  const addresses = [...new Set([...namespaces, sink].map((ns) => ns.hostAddress))];
  const pdns = await startPdns({ dns: { addresses, port: 53 } });
  onCleanup("PowerDNS", () => pdns.stop());
  await pdns.createZone(REMOTE_DOMAIN);
  const rrset = (name: string, type: string, content: string): object => ({
    name: `${name}.`,
    type,
    ttl: 3600,
    changetype: "REPLACE",
    records: [{ content, disabled: false }],
  });
  const patched = await pdns.api("PATCH", `/zones/${REMOTE_DOMAIN}.`, {
    rrsets: [rrset(REMOTE_DOMAIN, "MX", `10 ${SINK_HOST}.`), rrset(SINK_HOST, "A", sink.nsAddress)],
  });
  if (patched.status !== 204) throw new Error(`PowerDNS: MX for ${REMOTE_DOMAIN}: HTTP ${patched.status}`);
  for (const ns of relaying) {
    await linkNamespaces(ns, sink);
    const { stdout } = await ns.run("dig", ["+short", "+time=2", "+tries=2", "MX", REMOTE_DOMAIN]);
    if (stdout.trim() !== `10 ${SINK_HOST}.`)
      throw new Error(`${ns.name}: MX ${REMOTE_DOMAIN} resolved to ${JSON.stringify(stdout.trim())}`);
  }
}
