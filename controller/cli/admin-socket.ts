// The embedded database belongs to one process. While `serve` runs, other CLI invocations send
// their argv over a unix socket in the home (mode 0600) and the daemon runs the same command
// in-process with its open database, streaming stdout/stderr and the exit code back.
//
// A client may vanish at any moment (Ctrl-C during a long listing, `| head -1`): an error on one
// connection ends that connection, is logged once with the peer, and never reaches the process.
import { chmodSync, existsSync, unlinkSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import type { Socket } from "node:net";
import { NetservaError } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import { timed } from "../../common/phase-timing.ts";
import type { Database } from "../db/open-database.ts";
import { forwardedActor, lookupAdminPeer } from "./admin-peer.ts";
import type { AdminPeer } from "./admin-peer.ts";
import type { CliContext, CliIo, DaemonInfo } from "./cli-context.ts";
import { createSocketTable } from "./socket-table.ts";

interface Request {
  argv: string[];
  stdin: string;
  /** What the client calls itself (NETSERVA_MAIL_ACTOR, SUDO_USER or its user name). */
  actor?: string;
  /** The client's working directory: relative paths in argv mean paths there. */
  cwd?: string;
  /** The client's pid: a hint, used only once the kernel confirms it holds the connection. */
  pid?: number;
}

type Frame = { out: string } | { err: string } | { exit: number };

/** The request line carries stdin (an import file piped in): generous, but bounded. */
export const MAX_REQUEST_BYTES = 64 * 1024 * 1024;
/** A connection that sends no complete request in this time is dropped. */
const REQUEST_TIMEOUT_MS = 60_000;

function parseRequest(line: string): Request {
  const value: unknown = JSON.parse(line);
  if (typeof value !== "object" || value === null) throw new Error("not an object");
  const argv: unknown = Reflect.get(value, "argv");
  const stdin: unknown = Reflect.get(value, "stdin");
  const actor: unknown = Reflect.get(value, "actor");
  const cwd: unknown = Reflect.get(value, "cwd");
  const pid: unknown = Reflect.get(value, "pid");
  if (!Array.isArray(argv) || argv.some((a) => typeof a !== "string")) throw new Error("bad argv");
  return {
    argv: argv.map(String),
    stdin: typeof stdin === "string" ? stdin : "",
    ...(typeof actor === "string" ? { actor } : {}),
    ...(typeof cwd === "string" && cwd.startsWith("/") ? { cwd } : {}),
    ...(typeof pid === "number" && Number.isInteger(pid) && pid > 0 ? { pid } : {}),
  };
}

/** Reads the first line of a connection, at most `limit` bytes; undefined if it never comes. */
function readRequestLine(socket: Socket, limit: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (line: string | undefined): void => {
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      resolve(line);
    };
    const onData = (chunk: Buffer): void => {
      const nl = chunk.indexOf(0x0a);
      if (nl >= 0) {
        chunks.push(chunk.subarray(0, nl));
        return done(Buffer.concat(chunks).toString("utf8"));
      }
      size += chunk.length;
      if (size > limit) return done(undefined);
      chunks.push(chunk);
    };
    const onEnd = (): void => done(undefined);
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
  });
}

export interface AdminSocket {
  /** Stops accepting, drops connections that have not sent a command, and resolves once the
   *  commands already running have finished and answered (serve bounds the wait). */
  close(): Promise<void>;
}

export async function startAdminSocket(options: {
  path: string;
  db: Database;
  ctx: CliContext;
  run: (argv: string[], ctx: CliContext) => Promise<number>;
  log: Logger;
  daemon?: DaemonInfo;
  /** Counts connections that ended with an error. */
  onClientError?: () => void;
}): Promise<AdminSocket> {
  if (existsSync(options.path)) unlinkSync(options.path);
  const shared: Database = { kind: options.db.kind, em: () => options.db.em(), close: async () => undefined };
  const open = new Set<Socket>();
  /** Connections whose command is running: closing waits for their answer instead of cutting
   *  them (a client told "closed before the command ended" of a command that then committed). */
  const running = new Set<Socket>();
  let closing = false;
  let nextId = 1;
  // The kernel's socket table for each connection's peer, read by a helper process (a spawn
  // from serve costs more the larger serve's heap: see socket-table.ts).
  const tables = createSocketTable({
    onHelperFailure: (reason) => options.log.warn("socket table helper failed; ss runs in serve", { reason }),
  });

  const serve = async (socket: Socket, connection: number): Promise<void> => {
    const known: { peer?: AdminPeer } = {};
    const log = (): Logger =>
      options.log.child({
        admin_connection: connection,
        peer_pid: known.peer?.pid ?? null,
        peer_uid: known.peer?.uid ?? null,
      });
    // One 'error' listener for the life of the socket: a client that goes away (EPIPE,
    // ECONNRESET) ends this connection only, and is logged once.
    let gone = false;
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (gone) return;
      gone = true;
      options.onClientError?.();
      log().warn("admin client connection failed", { error: error.code ?? error.message });
    });
    socket.setTimeout(REQUEST_TIMEOUT_MS, () => socket.destroy());
    const send = (frame: Frame): void => {
      if (socket.destroyed || !socket.writable) return;
      socket.write(JSON.stringify(frame) + "\n");
    };
    const lookup = lookupAdminPeer(socket, tables);
    const line = await timed("admin.request", () => readRequestLine(socket, MAX_REQUEST_BYTES));
    socket.setTimeout(0);
    let request: Request;
    try {
      if (line === undefined) throw new Error("no request");
      request = parseRequest(line);
    } catch {
      known.peer = await lookup.resolve(undefined);
      if (line !== undefined) log().warn("admin socket: malformed request");
      send({ err: "admin socket: malformed request\n" });
      send({ exit: 2 });
      socket.end();
      return;
    }
    const peer = await timed("admin.peer", () => lookup.resolve(request.pid));
    known.peer = peer;
    const io: CliIo = {
      out: (text) => send({ out: text }),
      err: (text) => send({ err: text }),
      readStdin: async () => request.stdin,
      env: options.ctx.io.env,
      isTTY: false,
      ...(request.cwd ? { cwd: request.cwd } : {}),
    };
    const inner: CliContext = {
      ...options.ctx,
      io,
      actor: forwardedActor(request.actor, peer),
      openDb: async () => shared,
      ...(options.daemon ? { daemon: options.daemon } : {}),
    };
    // Closing began while the request was read: the command is not started (the client hears
    // that the connection closed before an answer, and nothing ran).
    if (closing) {
      socket.destroy();
      return;
    }
    running.add(socket);
    const code = await timed("admin.command", () => options.run(request.argv, inner)).catch((error: unknown) => {
      send({ err: `error: ${NetservaError.from(error).message}\n` });
      return 70;
    });
    send({ exit: code });
    running.delete(socket);
    socket.end();
  };

  const server = createServer((socket: Socket) => {
    const connection = nextId++;
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    timed("admin.connection", () => serve(socket, connection)).catch((error: unknown) => {
      options.log.error("admin socket connection failed", {
        admin_connection: connection,
        error: NetservaError.from(error).message,
      });
      socket.destroy();
    });
  });
  server.on("error", (error) => options.log.error("admin socket failed", { error: error.message }));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.path, () => {
      server.off("error", reject);
      resolve();
    });
  }).catch((error: unknown) => {
    tables.close();
    throw error;
  });
  chmodSync(options.path, 0o600);
  return {
    close: () =>
      new Promise((resolve) => {
        closing = true;
        tables.close();
        server.close(() => resolve());
        for (const socket of open) if (!running.has(socket)) socket.destroy();
        if (existsSync(options.path)) unlinkSync(options.path);
      }),
  };
}

/** Sends a command to a running daemon; undefined when none answers on the socket. */
export async function forwardToDaemon(
  path: string,
  argv: string[],
  io: CliIo,
  stdin: () => Promise<string>,
  actor: string,
): Promise<number | undefined> {
  if (!existsSync(path)) return undefined;
  const socket = await new Promise<Socket | undefined>((resolve) => {
    const s = createConnection(path);
    s.once("connect", () => resolve(s));
    s.once("error", () => resolve(undefined));
  });
  if (!socket) return undefined;
  return new Promise((resolve) => {
    let code: number | undefined;
    let buffered = "";
    const frame = (line: string): void => {
      let value: Frame;
      try {
        value = JSON.parse(line) as Frame;
      } catch {
        return;
      }
      if ("out" in value && typeof value.out === "string") io.out(value.out);
      else if ("err" in value && typeof value.err === "string") io.err(value.err);
      else if ("exit" in value && typeof value.exit === "number") code = value.exit;
    };
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf("\n");
      while (nl >= 0) {
        frame(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf("\n");
      }
    });
    socket.on("error", () => undefined); // 'close' follows and says the rest
    socket.on("close", () => {
      if (code === undefined) io.err("error: the controller daemon closed the connection before the command ended\n");
      resolve(code ?? 5);
    });
    stdin().then(
      (text) => socket.write(JSON.stringify({ argv, stdin: text, actor, cwd: io.cwd, pid: process.pid }) + "\n"),
      () => socket.destroy(),
    );
  });
}
