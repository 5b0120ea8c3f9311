// Scale harness only: swarm agents in a child process (swarm-child.ts), for scripts/bench-fleet.
// The child enrolls and runs the agents; vnodes are registered here (the caller owns the CLI).
// The agents' homes are on disk, so the caller reads their files (revoked.json) directly.
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { ChildReply, ChildRequest, ParentReply, ParentRequest } from "./swarm-protocol.ts";

export interface RemoteAgent {
  readonly name: string;
  readonly home: string;
  readonly address: string;
}

export interface SwarmProcess {
  readonly pid: number;
  /** The agents running in the child, in the order they were added. */
  readonly agents: readonly RemoteAgent[];
  has(name: string): boolean;
  /** Registers, enrolls and starts these agents in the child, at most `concurrency` at a time. */
  addMany(names: readonly string[], concurrency: number): Promise<void>;
  /** Whether agent `name`'s recording mail host has mailbox `address`. */
  hasMailbox(name: string, address: string): Promise<boolean>;
  /** Stops every agent, removes their homes and waits for the child to exit. */
  close(): Promise<void>;
}

export interface SwarmProcessOptions {
  dir: string;
  controller: string;
  addVnode(name: string, address: string): Promise<string>;
  newToken(name: string): Promise<string>;
}

const CHILD = fileURLToPath(new URL("./swarm-child.ts", import.meta.url));

export function startSwarmProcess(options: SwarmProcessOptions): SwarmProcess {
  const child: ChildProcess = fork(CHILD, [options.dir, options.controller], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const agents = new Map<string, RemoteAgent>();
  const pending = new Map<number, { resolve: (r: ChildReply) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => {
    for (const p of pending.values()) p.reject(new Error("the swarm process exited"));
    pending.clear();
  });

  const reply = (message: ParentReply): void => void child.send(message);
  child.on("message", (message: ChildReply | ChildRequest) => {
    if ("ask" in message) {
      const token =
        message.op === "addVnode" ? options.addVnode(message.name, message.address) : options.newToken(message.name);
      void token.then(
        (t) => reply({ ask: message.ask, ok: true, token: t }),
        (error: unknown) => reply({ ask: message.ask, ok: false, error: String(error) }),
      );
      return;
    }
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    waiter?.resolve(message);
  });

  const request = (message: ParentRequest): Promise<ChildReply> =>
    new Promise((resolve, reject) => {
      pending.set(message.id, { resolve, reject });
      child.send(message);
    });

  return {
    get pid() {
      return child.pid ?? 0;
    },
    get agents() {
      return [...agents.values()];
    },
    has: (name) => agents.has(name),
    async addMany(names, concurrency) {
      const answer = await request({ id: ++nextId, op: "add", names: [...names], concurrency });
      if (!answer.ok) throw new Error(`swarm process: ${answer.error}`);
      for (const a of answer.agents) agents.set(a.name, a);
    },
    async hasMailbox(name, address) {
      const answer = await request({ id: ++nextId, op: "hasMailbox", name, address });
      return answer.ok && answer.found === true;
    },
    async close() {
      if (child.exitCode === null && child.connected)
        await request({ id: ++nextId, op: "close" }).catch(() => undefined);
      if (child.exitCode === null) {
        const killed = setTimeout(() => child.kill("SIGKILL"), 30_000);
        await exited;
        clearTimeout(killed);
      }
      agents.clear();
    },
  };
}
