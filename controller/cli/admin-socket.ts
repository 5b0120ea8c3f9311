// The embedded database belongs to one process. While `serve` runs, other CLI invocations send
// their argv over a unix socket in the home (mode 0600) and the daemon runs the same command
// in-process with its open database, streaming stdout/stderr and the exit code back.
import { chmodSync, existsSync, unlinkSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import type { Socket } from "node:net";
import { createInterface } from "node:readline";
import { NetservaError } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import type { CliContext, CliIo } from "./cli-context.ts";

interface Request {
  argv: string[];
  stdin: string;
}

type Frame = { out: string } | { err: string } | { exit: number };

export async function startAdminSocket(options: {
  path: string;
  db: Database;
  ctx: CliContext;
  run: (argv: string[], ctx: CliContext) => Promise<number>;
  log: Logger;
}): Promise<{ close(): Promise<void> }> {
  if (existsSync(options.path)) unlinkSync(options.path);
  const shared: Database = { kind: options.db.kind, em: () => options.db.em(), close: async () => undefined };
  const server = createServer((socket: Socket) => {
    const lines = createInterface({ input: socket });
    lines.once("line", (line) => {
      const send = (frame: Frame): void => void socket.write(JSON.stringify(frame) + "\n");
      let request: Request;
      try {
        request = JSON.parse(line) as Request;
        if (!Array.isArray(request.argv) || request.argv.some((a) => typeof a !== "string"))
          throw new Error("bad argv");
      } catch {
        send({ err: "admin socket: malformed request\n" });
        send({ exit: 2 });
        socket.end();
        return;
      }
      const io: CliIo = {
        out: (text) => send({ out: text }),
        err: (text) => send({ err: text }),
        readStdin: async () => request.stdin,
        env: options.ctx.io.env,
        isTTY: false,
      };
      const inner: CliContext = { ...options.ctx, io, openDb: async () => shared };
      options
        .run(request.argv, inner)
        .then((code) => send({ exit: code }))
        .catch((error: unknown) => {
          send({ err: `error: ${NetservaError.from(error).message}\n` });
          send({ exit: 70 });
        })
        .finally(() => socket.end());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.path, () => resolve());
  });
  chmodSync(options.path, 0o600);
  return {
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
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
): Promise<number | undefined> {
  if (!existsSync(path)) return undefined;
  const socket = await new Promise<Socket | undefined>((resolve) => {
    const s = createConnection(path);
    s.once("connect", () => resolve(s));
    s.once("error", () => resolve(undefined));
  });
  if (!socket) return undefined;
  socket.write(JSON.stringify({ argv, stdin: await stdin() }) + "\n");
  return new Promise((resolve) => {
    let code = 5;
    const lines = createInterface({ input: socket });
    lines.on("line", (line) => {
      const frame = JSON.parse(line) as Frame;
      if ("out" in frame) io.out(frame.out);
      else if ("err" in frame) io.err(frame.err);
      else code = frame.exit;
    });
    lines.on("close", () => resolve(code));
  });
}
