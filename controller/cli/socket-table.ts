// The kernel's unix socket table (`ss -xnH`; with -p, each socket's holders), read for the admin
// socket's peer lookup (admin-peer.ts) by a small helper process started once
// (socket-table-helper.ts), not by `serve` itself. Spawning a program forks the spawner, and a
// fork copies its page tables: its cost grows with the spawner's heap. Serve's heap grows with
// its fleet (a link per vnode: ~570 MiB at 1,000 vnodes), and one `ss` per admin connection took
// 6.3 ms at 10 vnodes and 18 ms at 1,000 (bench-fleet), several of them with the event loop held
// by the fork, while every forwarded command waited for the table. The helper is a bare Node
// process: its forks stay small and none of them is on serve's event loop.
//
// The helper can fail (killed, hung, not startable): a request it does not answer within the
// timeout is read by a spawn here, as before, and a helper that failed three times in a row is
// not started again (every read then spawns here). Nothing here throws or exits serve. Reads
// of one kind run one at a time and are shared (a flood of connections is not a flood of `ss`).
import { execFile, fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";

/** A table read takes at most this long (a hung `ss`, a hung helper). */
const TIMEOUT_MS = 5000;
/** Helper failures in a row after which reads spawn `ss` here. */
const MAX_FAILURES = 3;

/** `ss -xnH` (or `-xnpH`): the text, "" when it failed. */
export function readSocketTable(withProcesses: boolean): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      "ss",
      [withProcesses ? "-xnpH" : "-xnH"],
      { timeout: TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout) => resolve(error ? "" : stdout),
    );
  });
}

export interface SocketTable {
  read(withProcesses: boolean): Promise<string>;
  /** Tables the helper answered (not those read here after it failed). */
  readonly answered: number;
  /** The helper's pid while one runs (tests, diagnostics). */
  readonly helperPid: number | undefined;
  /** Stops the helper; later reads spawn here. */
  close(): void;
}

export interface SocketTableOptions {
  /** Told when the helper fails and a read falls back to a spawn here (the caller logs). */
  onHelperFailure?: (reason: string) => void;
  timeoutMs?: number;
}

const HELPER = new URL("./socket-table-helper.ts", import.meta.url);

export function createSocketTable(options: SocketTableOptions = {}): SocketTable {
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  let helper: ChildProcess | undefined;
  let failures = 0;
  let closed = false;
  let answered = 0;
  let nextId = 1;
  const waiting = new Map<number, (text: string | undefined) => void>();

  /** Answers every waiting read "ask elsewhere" and forgets this helper. */
  const fail = (child: ChildProcess, reason: string): void => {
    if (helper !== child) return;
    helper = undefined;
    failures += 1;
    child.kill("SIGKILL");
    for (const answer of waiting.values()) answer(undefined);
    waiting.clear();
    if (!closed) options.onHelperFailure?.(reason);
  };

  const start = (): ChildProcess | undefined => {
    if (closed || failures >= MAX_FAILURES) return undefined;
    let child: ChildProcess;
    try {
      // Bare: none of serve's own Node options (the helper only runs `ss`).
      child = fork(HELPER, [], { stdio: ["ignore", "ignore", "ignore", "ipc"], serialization: "json", execArgv: [] });
    } catch (error) {
      failures += 1;
      options.onHelperFailure?.(String(error));
      return undefined;
    }
    helper = child;
    child.on("error", (error) => fail(child, error.message));
    child.on("exit", (code, signal) => fail(child, `helper exited (${signal ?? code})`));
    child.on("message", (message: unknown) => {
      const id: unknown = message !== null && typeof message === "object" ? Reflect.get(message, "id") : undefined;
      const text: unknown = message !== null && typeof message === "object" ? Reflect.get(message, "text") : undefined;
      const answer = typeof id === "number" ? waiting.get(id) : undefined;
      if (!answer || typeof text !== "string") return;
      waiting.delete(id as number);
      failures = 0;
      answered += 1;
      answer(text);
    });
    // An idle helper does not keep the process alive (serve exits when its work is done).
    child.unref();
    child.channel?.unref();
    return child;
  };

  const ask = (withProcesses: boolean): Promise<string | undefined> => {
    const child = helper ?? start();
    if (!child?.connected) return Promise.resolve(undefined);
    const id = nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => fail(child, `no answer in ${timeoutMs} ms`), timeoutMs);
      child.channel?.ref();
      waiting.set(id, (text) => {
        clearTimeout(timer);
        if (waiting.size === 0) child.channel?.unref();
        resolve(text);
      });
      child.send({ id, withProcesses }, (error) => {
        if (error) fail(child, error.message);
      });
    });
  };

  /** One table of each kind at a time: a read asked for while one runs gets the next one, shared
   *  by everyone who asked meanwhile (it starts after they were accepted, so it lists their
   *  connections). A burst of connections costs two `ss` runs, not one each. */
  const queue = (withProcesses: boolean): (() => Promise<string>) => {
    let tail: Promise<unknown> = Promise.resolve();
    let queued: Promise<string> | undefined;
    return (): Promise<string> => {
      if (queued) return queued;
      const run: Promise<string> = tail.then(async () => {
        if (queued === run) queued = undefined;
        const viaHelper = await ask(withProcesses).catch(() => undefined);
        return viaHelper ?? readSocketTable(withProcesses);
      });
      queued = run;
      tail = run;
      return run;
    };
  };
  const plain = queue(false);
  const withHolders = queue(true);

  start();
  return {
    read: (withProcesses) => (withProcesses ? withHolders() : plain()),
    get answered() {
      return answered;
    },
    get helperPid() {
      return helper?.pid;
    },
    close() {
      closed = true;
      const child = helper;
      if (child) fail(child, "closed");
    },
  };
}
