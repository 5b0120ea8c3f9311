// The scale harness: many agents in ONE process, for the fleet-scale test and scripts/bench-fleet.
// Each swarm agent is the real agent daemon (agent/agent-daemon.ts: its own grpc-js server on its
// own 127.0.0.1 port, its own key, CSR, join token and certificate from real enrollment against
// the controller, its own health stream, revocations and renewal) with one thing swapped: the mail
// host records what it is told (test/swarm/recording-mail-host.ts) instead of running daemons.
// The real agent, with real Postfix and Dovecot in a namespace, is what every other test uses.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { startAgentDaemon, type AgentDaemon } from "../../agent/agent-daemon.ts";
import { enrollThisAgent } from "../../agent/enroll/enroll.ts";
import { agentHomePaths } from "../../agent/home/agent-home.ts";
import { silentLogger, type Logger } from "../../common/log.ts";
import { createRecordingMailHost, type RecordingMailHost } from "./recording-mail-host.ts";

export interface SwarmAgent {
  readonly name: string;
  /** 127.0.0.1:port the agent listens on (what the controller was told). */
  readonly address: string;
  readonly home: string;
  readonly host: RecordingMailHost;
  /** The running daemon; undefined while stopped. */
  readonly daemon: AgentDaemon | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SwarmOptions {
  /** A directory for the agents' homes (removed by close()). */
  dir: string;
  /** host:port of the controller's enrollment listener. */
  controller: string;
  /** Registers a vnode at `address` with the controller; resolves with its join token. */
  addVnode(name: string, address: string): Promise<string>;
  /** A fresh join token for a vnode whose enrollment failed (a slow, loaded machine can miss the
   *  enrollment deadline); without it a failed enrollment fails add(). */
  newToken?(name: string): Promise<string>;
  log?: Logger;
}

export interface Swarm {
  readonly agents: readonly SwarmAgent[];
  get(name: string): SwarmAgent | undefined;
  /** Registers, enrolls and starts one agent. */
  add(name: string): Promise<SwarmAgent>;
  /** add() for every name, at most `concurrency` at a time (enrollment costs a key and a signature). */
  addMany(names: readonly string[], concurrency?: number): Promise<SwarmAgent[]>;
  /** Stops every agent (the homes stay: start() brings one back as it was). */
  stopAll(): Promise<void>;
  close(): Promise<void>;
}

/** Runs `work` over `items`, at most `limit` at a time, results in order. */
export async function inBatches<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** Where ports the kernel hands out by itself begin (outgoing connections' source ports). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 12_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}
const PORTS_FROM = 10_000;
const portsTo = ephemeralLow();
let nextPort = PORTS_FROM + Math.floor(Math.random() * (portsTo - PORTS_FROM));

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/**
 * A port for an agent, below the ephemeral range. The address is told to the controller before
 * the agent binds it (enrollment comes between): a port the kernel handed out and took back could
 * meanwhile become the source port of one of the thousand outgoing connections (the controller's
 * links, the database's), and the agent could not listen (seen at 1,000 agents). Ports below the
 * range are only ever taken by an explicit bind; each is handed out once per process.
 */
async function agentPort(): Promise<number> {
  for (let tries = 0; tries < portsTo - PORTS_FROM; tries++) {
    const port = nextPort;
    nextPort = nextPort + 1 >= portsTo ? PORTS_FROM : nextPort + 1;
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${PORTS_FROM}..${portsTo - 1}`);
}

export function createSwarm(options: SwarmOptions): Swarm {
  const agents = new Map<string, SwarmAgent>();
  const log = options.log ?? silentLogger;
  mkdirSync(options.dir, { recursive: true });

  const add = async (name: string): Promise<SwarmAgent> => {
    // The port is reserved, then told to the controller, then bound by the agent: the controller
    // must know the address before the join token exists.
    const address = `127.0.0.1:${await agentPort()}`;
    let token = await options.addVnode(name, address);
    const home = join(options.dir, name);
    for (let attempt = 1; ; attempt++) {
      try {
        await enrollThisAgent({ controller: options.controller, token, paths: agentHomePaths(home), version: "swarm" });
        break;
      } catch (error) {
        if (!options.newToken || attempt >= 3) throw error;
        token = await options.newToken(name);
      }
    }
    const host = createRecordingMailHost();
    let daemon: AgentDaemon | undefined;
    const agent: SwarmAgent = {
      name,
      address,
      home,
      host,
      get daemon() {
        return daemon;
      },
      async start() {
        if (daemon) return;
        daemon = await startAgentDaemon({ home, listen: address, log: log.child({ swarm: name }), mailPort: host });
      },
      async stop() {
        const running = daemon;
        daemon = undefined;
        await running?.close();
      },
    };
    agents.set(name, agent);
    await agent.start();
    return agent;
  };

  return {
    get agents() {
      return [...agents.values()];
    },
    get: (name) => agents.get(name),
    add,
    addMany: (names, concurrency = 8) => inBatches(names, concurrency, add),
    async stopAll() {
      await inBatches([...agents.values()], 50, (a) => a.stop());
    },
    async close() {
      await inBatches([...agents.values()], 50, (a) => a.stop().catch(() => undefined));
      agents.clear();
      rmSync(options.dir, { recursive: true, force: true });
    },
  };
}
