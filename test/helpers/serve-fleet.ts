// A real `serve` process (the one the fault tests kill and restart) with N mail vnodes, each an
// agent process in its own network namespace with a private --root, enrolled, at their first
// generation, with one domain each. The database is the embedded PGlite in the home, or a fresh
// PostgreSQL database when `databaseUrl` is given. Everything is stopped by PID in close().
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { createVnodePaths } from "../../agent/paths.ts";
import { runAgentCli } from "../../agent/cli/main.ts";
import { startAgentProcess, type AgentProcess } from "./agent-process.ts";
import { createTestNetns, type TestNetns } from "./netns.ts";
import { restartServeProcess, startServeProcess, type ServeProcess } from "./serve-process.ts";
import { until } from "./mail-fleet.ts";

const exec = promisify(execFile);
export const AGENT_PORT = 7444;

export interface ServeVnode {
  name: string;
  domain: string;
  ns: TestNetns;
  root: string;
  agent: AgentProcess;
}

export interface StatusRow {
  vnode: string;
  connected: boolean;
  generation: number;
  appliedGeneration: number;
}

export interface ServeFleet {
  /** The serve running now (a new one after restart()). */
  readonly serve: ServeProcess;
  vnodes: ServeVnode[];
  logDir: string;
  /** Starts serve again on the same home once the last one ended; env as restartServeProcess. */
  restart(env?: Record<string, string>): Promise<ServeProcess>;
  status(): Promise<StatusRow[]>;
  /** Waits until every vnode is connected at its desired generation; returns the rows. */
  converged(ms?: number): Promise<StatusRow[]>;
  /** The domains and mailbox addresses in a vnode's lookup database (what Postfix and Dovecot read). */
  lookupRows(v: ServeVnode): Promise<{ domains: string[]; mailboxes: string[] }>;
  close(): Promise<void>;
}

async function sqliteColumn(file: string, sql: string): Promise<string[]> {
  const { stdout } = await exec("sqlite3", ["-readonly", file, sql], { timeout: 30_000 });
  return stdout
    .split("\n")
    .filter((l) => l !== "")
    .sort();
}

export async function startServeFleet(
  names: string[],
  tag: string,
  options: { databaseUrl?: string; serveEnv?: Record<string, string> } = {},
): Promise<ServeFleet> {
  let serve = await startServeProcess({
    env: { ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}), ...options.serveEnv },
    args: ["--health-interval", "500"],
  });
  const logDir = mkdtempSync(join(tmpdir(), `nsm-${tag}-logs-`));
  const vnodes: ServeVnode[] = [];
  const status = async (): Promise<StatusRow[]> => {
    const r = await serve.cli(["status", "--json"]);
    if (r.code !== 0) throw new Error(`status: ${r.code} ${r.err}`);
    return JSON.parse(r.out) as StatusRow[];
  };
  const fleet: ServeFleet = {
    get serve() {
      return serve;
    },
    vnodes,
    logDir,
    async restart(env = {}) {
      serve = await restartServeProcess(serve, env);
      return serve;
    },
    status,
    converged(ms = 120_000) {
      return until(
        async () => {
          const rows = await status();
          const mine = rows.filter((r) => vnodes.some((v) => v.name === r.vnode));
          return mine.length === vnodes.length && mine.every((r) => r.connected && r.appliedGeneration === r.generation)
            ? mine
            : undefined;
        },
        ms,
        "every vnode connected at its generation",
      );
    },
    async lookupRows(v) {
      const file = createVnodePaths(v.root).lookupDb;
      return {
        domains: await sqliteColumn(file, "select domain from vhosts"),
        mailboxes: await sqliteColumn(file, "select user from vmails"),
      };
    },
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
        rmSync(v.root, { recursive: true, force: true });
      }
      await serve.stop();
      rmSync(serve.dir, { recursive: true, force: true });
      if (!process.env["KEEP_LOGS"]) rmSync(logDir, { recursive: true, force: true });
    },
  };
  try {
    for (const name of names) {
      const ns = await createTestNetns(`${tag}${vnodes.length}`);
      const root = mkdtempSync(join(tmpdir(), `nsm-${tag}-root-`));
      chmodSync(root, 0o755);
      const added = await serve.cli(["vnode", "add", name, "--address", `${ns.nsAddress}:${AGENT_PORT}`]);
      if (added.code !== 0) throw new Error(`vnode add: ${added.err}`);
      const token = added.out.trim().split("\n").pop() ?? "";
      const home = join(serve.dir, `agent-${name}`);
      let err = "";
      const io = { out: () => undefined, err: (t: string) => void (err += t) };
      const enrolled = await runAgentCli(
        ["enroll", "--controller", `127.0.0.1:${serve.port}`, "--token", token, "--home", home],
        io as never,
      );
      if (enrolled !== 0) throw new Error(`enroll: ${err}`);
      const set = await serve.cli(["vnode", "set", name, "--mail-hostname", `mail.${name}.test`]);
      if (set.code !== 0) throw new Error(`vnode set: ${set.err}`);
      const agent = await startAgentProcess({ ns, home, root, port: AGENT_PORT, logDir });
      vnodes.push({ name, domain: `${name}.test`, ns, root, agent });
    }
    await fleet.converged();
    for (const v of vnodes) {
      const domain = await serve.cli(["addvmaildomain", v.name, v.domain, "--skip-dns-check"]);
      if (domain.code !== 0) throw new Error(`addvmaildomain: ${domain.err}`);
    }
    await fleet.converged();
    return fleet;
  } catch (error) {
    await fleet.close();
    throw error;
  }
}
