// A controller (in-process harness) and N mail vnodes, each an agent process in its own network
// namespace with a private --root, metrics on the namespace address, enrolled and reconciled to
// their first generation, with one domain. Used by the health, SMTP test and Prometheus suites.
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createVnodePaths } from "../../agent/paths.ts";
import { startHarness, type Harness } from "./controller-harness.ts";
import { createTestNetns, type TestNetns } from "./netns.ts";
import { startAgentProcess, type AgentProcess } from "./agent-process.ts";

export const AGENT_PORT = 7444;
export const METRICS_PORT = 9464;

export interface FleetVnode {
  name: string;
  domain: string;
  mailHostname: string;
  ns: TestNetns;
  root: string;
  agent: AgentProcess;
  metricsAddress: string;
}

export interface MailFleet {
  harness: Harness;
  caPem: string;
  logDir: string;
  vnodes: FleetVnode[];
  close(): Promise<void>;
}

export async function until<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

export interface MailFleetOptions {
  /** Runs after a vnode's namespace exists and before its agent (and so its daemons) starts: e.g.
   * writing /etc/netns/<ns>/resolv.conf, which `ip netns exec` bind-mounts when the agent starts,
   * or mounting a filesystem under `root` (the agent's mount namespace is copied from the host's
   * when it starts: later host mounts would not reach it, the host's / being private). */
  beforeAgent?: (ns: TestNetns, name: string, root: string) => Promise<void>;
  /** More `serve` flags for the agents (e.g. `--filter-offline` for a vnode with Rspamd). */
  agentArgs?: string[];
  /** Options for the agents' Node (e.g. `--import` a hook). */
  agentNodeArgs?: string[];
  /** Lifetime of agent certificates (short: renewals happen during the test). */
  agentCertificateSeconds?: number;
  /** Agents enroll through (and so later renew at) their veth's host address, with the
   *  controller listening on every address; otherwise 127.0.0.1, out of a namespace's reach. */
  reachableController?: boolean;
  /** The agents take their mail listen addresses from the state (`vnode set --mail-listen`), as
   * in production, instead of a --mail-listen that overrides it. */
  listenFromState?: boolean;
  /** Options for the controller harness (health interval 500 ms unless given). */
  harness?: Parameters<typeof startHarness>[0];
}

export async function startMailFleet(names: string[], tag: string, options: MailFleetOptions = {}): Promise<MailFleet> {
  const harness = await startHarness({
    healthIntervalMs: 500,
    ...(options.reachableController ? { listenHost: "0.0.0.0" } : {}),
    ...(options.agentCertificateSeconds ? { agentCertificateSeconds: options.agentCertificateSeconds } : {}),
    ...options.harness,
  });
  const logDir = mkdtempSync(join(tmpdir(), `nsm-${tag}-logs-`));
  const vnodes: FleetVnode[] = [];
  const fleet: MailFleet = {
    harness,
    caPem: readFileSync(join(harness.home, "ca", "ca.crt"), "utf8"),
    logDir,
    vnodes,
    async close() {
      for (const v of vnodes) {
        await v.agent.stop().catch(() => undefined);
        for (const pid of await v.ns.pids()) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone already
          }
        }
        await v.ns.destroy();
        // KEEP_LOGS keeps the daemons' own logs beside the agent's, for a failure to be read later.
        const daemonLogs = createVnodePaths(v.root).postfixLogDir; // Postfix's and Dovecot's
        if (process.env["KEEP_LOGS"] && existsSync(daemonLogs))
          cpSync(daemonLogs, join(logDir, `${v.name}-daemons`), { recursive: true });
        try {
          rmSync(v.root, { recursive: true, force: true });
        } catch (error) {
          // A mount left under the root (EBUSY): the rest of the fleet is still closed.
          console.warn(`fleet close: ${v.root} not removed: ${String(error)}`);
        }
      }
      await harness.close();
      if (!process.env["KEEP_LOGS"]) rmSync(logDir, { recursive: true, force: true });
    },
  };
  try {
    for (const name of names) {
      const ns = await createTestNetns(`${tag}${vnodes.length}`);
      const root = mkdtempSync(join(tmpdir(), `nsm-${tag}-root-`));
      chmodSync(root, 0o755);
      const mailHostname = `mail.${name}.test`;
      const added = await harness.cli(["vnode", "add", name, "--address", `${ns.nsAddress}:${AGENT_PORT}`]);
      if (added.code !== 0) throw new Error(`vnode add: ${added.err}`);
      const token = added.out.trim().split("\n").pop() ?? "";
      const home = join(harness.dir, `agent-${name}`);
      const enrolled = await harness.cli([
        "agent",
        "enroll",
        "--controller",
        options.reachableController
          ? `${ns.hostAddress}:${harness.controllerAddress.split(":")[1] ?? ""}`
          : harness.controllerAddress,
        "--token",
        token,
        "--home",
        home,
      ]);
      if (enrolled.code !== 0) throw new Error(`enroll: ${enrolled.err}`);
      const set = await harness.cli([
        "vnode",
        "set",
        name,
        "--mail-hostname",
        mailHostname,
        "--mail-listen",
        ns.nsAddress,
      ]);
      if (set.code !== 0) throw new Error(`vnode set: ${set.err}`);
      const metricsAddress = `${ns.nsAddress}:${METRICS_PORT}`;
      await options.beforeAgent?.(ns, name, root);
      const agent = await startAgentProcess({
        ns,
        home,
        root,
        port: AGENT_PORT,
        logDir,
        extraArgs: ["--metrics-listen", metricsAddress, "--usage-interval", "1000", ...(options.agentArgs ?? [])],
        ...(options.agentNodeArgs ? { nodeArgs: options.agentNodeArgs } : {}),
        ...(options.listenFromState ? { mailListen: false } : {}),
      });
      const domain = `${name}.test`;
      vnodes.push({ name, domain, mailHostname, ns, root, agent, metricsAddress });
    }
    for (const v of vnodes) {
      await until(
        async () => {
          const rows = JSON.parse((await harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
          const row = rows.find((r) => r["vnode"] === v.name);
          return row && row["connected"] === true && row["appliedGeneration"] === row["generation"] ? row : undefined;
        },
        90_000,
        `${v.name} to reach its generation`,
      );
      const domain = await harness.cli(["addvmaildomain", v.name, v.domain, "--skip-dns-check"]);
      if (domain.code !== 0) throw new Error(`addvmaildomain: ${domain.err}`);
    }
    return fleet;
  } catch (error) {
    await fleet.close();
    throw error;
  }
}
