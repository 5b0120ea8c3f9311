// The password hash on a thread of its own. A command inside serve (addvmail, chvmail) hashes
// while the same event loop opens the agent's TLS connection, runs the embedded database and
// takes health reports: ~6 ms of SHA512-CRYPT there is ~6 ms that all of them wait. serve starts
// one hash thread (startHashThread) and every SHA512-CRYPT of the process goes to it; a one-shot
// CLI process, which would pay more to start a thread than to hash, never starts one and hashes
// in turns on its own loop. Until the thread has loaded, and after it dies, hashing stays here.
import { Worker } from "node:worker_threads";
import type { Sha512CryptSettings } from "./sha512-crypt.ts";

interface Pending {
  resolve: (hash: string) => void;
  reject: (error: Error) => void;
}

interface HashThread {
  worker: Worker;
  ready: boolean;
  pending: Map<number, Pending>;
}

/** What the thread answers: loaded, a hash, or why one failed. */
export type ThreadReply = { ready: true } | { id: number; hash: string } | { id: number; error: string };

/** What the thread is asked. */
export interface ThreadRequest {
  id: number;
  password: string;
  settings: Sha512CryptSettings;
}

let thread: HashThread | undefined;
/** How many started it (several controller daemons in one test process): the last stop ends it. */
let users = 0;
let nextId = 1;
let hashedOnThread = 0;

function spawn(): HashThread {
  const worker = new Worker(new URL("./hash-thread.ts", import.meta.url));
  const started: HashThread = { worker, ready: false, pending: new Map() };
  // Not a reason for the process to stay up, unless a hash is in flight (see hashOnThread).
  worker.unref();
  worker.on("message", (reply: ThreadReply) => {
    if ("ready" in reply) {
      started.ready = true;
      return;
    }
    const waiting = started.pending.get(reply.id);
    if (!waiting) return;
    started.pending.delete(reply.id);
    if (started.pending.size === 0) worker.unref();
    if ("hash" in reply) {
      hashedOnThread++;
      waiting.resolve(reply.hash);
    } else waiting.reject(new Error(reply.error));
  });
  const gone = (why: string): void => {
    if (thread === started) thread = undefined;
    for (const waiting of started.pending.values()) waiting.reject(new Error(`the hash thread ${why}`));
    started.pending.clear();
  };
  worker.on("error", (error) => gone(`failed: ${error.message}`));
  worker.on("exit", (code) => gone(`exited (${code})`));
  return started;
}

/** serve's start: the hash thread runs from now until the matching stopHashThread. */
export function startHashThread(): void {
  users++;
  thread ??= spawn();
}

/** serve's stop: the thread ends with its last user (hashes in flight fall back to the caller). */
export async function stopHashThread(): Promise<void> {
  users = Math.max(0, users - 1);
  if (users > 0 || !thread) return;
  const ending = thread;
  thread = undefined;
  await ending.worker.terminate();
}

/**
 * The hash on the thread, or undefined when no thread is ready (the caller hashes itself). The
 * promise rejects if the thread dies before answering; the caller then hashes itself too.
 */
export function hashOnThread(password: string, settings: Sha512CryptSettings): Promise<string> | undefined {
  if (!thread && users > 0) thread = spawn(); // it died: a new one for the hashes after this
  if (!thread?.ready) return undefined;
  const current = thread;
  const id = nextId++;
  return new Promise<string>((resolve, reject) => {
    current.pending.set(id, { resolve, reject });
    current.worker.ref();
    current.worker.postMessage({ id, password, settings } satisfies ThreadRequest);
  });
}

/** For tests and metrics: whether a thread is ready, how many started it, how many hashes it made. */
export function hashThreadState(): { ready: boolean; users: number; hashed: number } {
  return { ready: thread?.ready === true, users, hashed: hashedOnThread };
}
