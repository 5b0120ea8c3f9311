// Spins up a real controller home, controller daemon and enrolled agent(s) in this process on
// loopback ports, driving them through the same CLI code operators use.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../../common/log.ts";
import type { Logger } from "../../common/log.ts";
import type { EnrollmentLimits } from "../../controller/enrollment/enrollment-server.ts";
import { runCommand } from "../../controller/cli/main.ts";
import { runAgentCli } from "../../agent/cli/main.ts";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import type { CliContext, DaemonInfo } from "../../controller/cli/cli-context.ts";
import { startControllerDaemon } from "../../controller/daemon/controller-daemon.ts";
import type { ControllerDaemon } from "../../controller/daemon/controller-daemon.ts";
import { createControllerMetrics } from "../../controller/daemon/controller-metrics.ts";
import type { ControllerMetrics } from "../../controller/daemon/controller-metrics.ts";
import { readControllerConfig } from "../../controller/home/controller-config.ts";
import type { Database } from "../../controller/db/open-database.ts";
import { startAgentDaemon } from "../../agent/agent-daemon.ts";
import type { AgentDaemon } from "../../agent/agent-daemon.ts";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

export function cliRunner(
  env: Record<string, string | undefined>,
  shared?: () => Database,
  /** As serve gives the commands it runs for the admin socket (undefined: a CLI process of its own). */
  daemon?: () => DaemonInfo | undefined,
): (argv: string[], stdin?: string) => Promise<CliRun> {
  return async (argv, stdin = "") => {
    let out = "";
    let err = "";
    const base = createCliContext({
      out: (t) => void (out += t),
      err: (t) => void (err += t),
      readStdin: async () => stdin,
      env,
      isTTY: false,
    });
    const inDaemon = daemon?.();
    const ctx: CliContext = shared
      ? {
          ...base,
          openDb: async () => {
            const db = shared();
            return { ...db, close: async () => undefined };
          },
          ...(inDaemon ? { daemon: inDaemon } : {}),
        }
      : base;
    // `agent …` is the agent's own command line, as bin/netserva-mail.js dispatches it.
    const code = argv[0] === "agent" ? await runAgentCli(argv.slice(1), base.io) : await runCommand(argv, ctx);
    return { code, out, err };
  };
}

export interface Harness {
  dir: string;
  home: string;
  env: Record<string, string | undefined>;
  cli: (argv: string[], stdin?: string) => Promise<CliRun>;
  /** cli() runs commands as serve runs them for the admin socket (pushing over the daemon's links)
   *  instead of as a CLI process of its own (a connection per command). Default false. */
  commandsInDaemon: boolean;
  /** The running controller daemon (a new one after restartController). */
  readonly controller: ControllerDaemon;
  db: Database;
  /** The controller daemon's metrics (what `netserva-mail metrics` prints from serve). */
  metrics: ControllerMetrics;
  controllerAddress: string;
  /** `vnode add <name> --address <address>` and `agent enroll` into `<dir>/<homeName>`: an enrolled
   *  agent home ready to start (in this process or in a namespace). Throws with the CLI's words. */
  enrollVnode(name: string, address: string, homeName?: string): Promise<{ home: string; token: string }>;
  addAgent(
    name: string,
    options?: { metrics?: boolean },
  ): Promise<{ agent: AgentDaemon; home: string; address: string; restart(): Promise<AgentDaemon> }>;
  /** Stop the controller daemon (a test of life without it) and start a new one on the same home and database. */
  stopController(): Promise<void>;
  startController(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(
  options: {
    agentCertificateSeconds?: number;
    healthIntervalMs?: number;
    staleAfterMs?: number;
    /** The controller daemon's logger (silent unless a test reads the log). */
    log?: Logger;
    enrollmentLimits?: EnrollmentLimits;
    /** Where the enrollment endpoint listens (default 127.0.0.1; 0.0.0.0 lets agents in test
     *  network namespaces reach it through their veth's host address, e.g. to renew). */
    listenHost?: string;
    /** serve's --certificate-check-interval (the controller's certificate and the mail TLS sweep). */
    certificateCheckMs?: number;
    /** Merged into controller.json after init (e.g. mailTlsCertificateSeconds). */
    config?: object;
  } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), "nsm-test-"));
  const home = join(dir, "controller");
  const env: Record<string, string | undefined> = { NETSERVA_MAIL_HOME: home, NETSERVA_MAIL_ACTOR: "test" };
  const initCli = cliRunner(env);
  const controllerPort = await freePort();
  const init = await initCli(["init", "--listen", `${options.listenHost ?? "127.0.0.1"}:${controllerPort}`]);
  if (init.code !== 0) throw new Error(`init failed: ${init.err}`);
  if (options.agentCertificateSeconds) {
    const configPath = join(home, "controller.json");
    const config = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
    writeFileSync(configPath, JSON.stringify({ ...config, agentCertificateSeconds: options.agentCertificateSeconds }));
  }
  if (options.config) {
    const configPath = join(home, "controller.json");
    const config = JSON.parse(readFileSync(configPath, "utf8")) as object;
    writeFileSync(configPath, JSON.stringify({ ...config, ...options.config }));
  }
  const metrics = createControllerMetrics();
  const ctx = createCliContext({
    out: () => undefined,
    err: () => undefined,
    readStdin: async () => "",
    env,
    isTTY: false,
  });
  const paths = ctx.paths();
  const db = await ctx.openDb(paths);
  const startDaemon = (): Promise<ControllerDaemon> =>
    startControllerDaemon({
      paths,
      config: readControllerConfig(paths.config),
      db,
      log: options.log ?? silentLogger,
      ...(options.enrollmentLimits ? { enrollmentLimits: options.enrollmentLimits } : {}),
      healthIntervalMs: options.healthIntervalMs ?? 500,
      staleAfterMs: options.staleAfterMs ?? 3000,
      metrics,
      ...(options.certificateCheckMs !== undefined ? { certificateCheckMs: options.certificateCheckMs } : {}),
    });
  let controller = await startDaemon();
  let running = true;
  let commandsInDaemon = false;
  const cli = cliRunner(
    env,
    () => db,
    () =>
      commandsInDaemon && running
        ? { metricsText: async () => metrics.text(), deliver: () => controller.deliver }
        : undefined,
  );
  const agents: AgentDaemon[] = [];
  const controllerAddress = `127.0.0.1:${controller.port}`;
  const enrollVnode: Harness["enrollVnode"] = async (name, address, homeName = `agent-${name}`) => {
    const added = await cli(["vnode", "add", name, "--address", address]);
    if (added.code !== 0) throw new Error(`vnode add failed: ${added.err}`);
    const token = added.out.trim().split("\n").pop() ?? "";
    const home = join(dir, homeName);
    const enrolled = await cli([
      "agent",
      "enroll",
      "--controller",
      controllerAddress,
      "--token",
      token,
      "--home",
      home,
    ]);
    if (enrolled.code !== 0) throw new Error(`enroll failed: ${enrolled.err}`);
    return { home, token };
  };
  return {
    dir,
    home,
    env,
    cli,
    get controller() {
      return controller;
    },
    get commandsInDaemon() {
      return commandsInDaemon;
    },
    set commandsInDaemon(on: boolean) {
      commandsInDaemon = on;
    },
    db,
    metrics,
    controllerAddress,
    enrollVnode,
    async addAgent(name, agentOptions = {}) {
      const port = await freePort();
      const address = `127.0.0.1:${port}`;
      const { home: agentHome } = await enrollVnode(name, address);
      const metricsPort = agentOptions.metrics ? await freePort() : undefined;
      const start = async (): Promise<AgentDaemon> => {
        const agent = await startAgentDaemon({
          home: agentHome,
          listen: address,
          ...(metricsPort ? { metricsListen: `127.0.0.1:${metricsPort}` } : {}),
          log: silentLogger,
        });
        agents.push(agent);
        return agent;
      };
      const agent = await start();
      return { agent, home: agentHome, address, restart: start };
    },
    async stopController() {
      if (running) await controller.close();
      running = false;
    },
    async startController() {
      if (running) return;
      controller = await startDaemon();
      running = true;
    },
    async close() {
      await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
      if (running) await controller.close();
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
