// The SMTP/IMAP probe keeps at most a bounded number of bytes of a server's output: a server
// that streams without ever completing a reply is cut off with an error that says so. A server
// that accepts and then stalls a TLS handshake (implicit TLS or STARTTLS) gets a timeout, and the
// probe ends that connection itself: a socket left open without an 'error' listener would turn
// the server's later reset into an uncaught error that ends the agent or controller.
import { createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { openLineSocket } from "../../common/smtp-probe/line-socket.ts";

let server: Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A server that writes `chunk` until the client goes away; resolves with its port. */
async function endless(chunk: string): Promise<number> {
  server = createServer((socket) => {
    socket.on("error", () => undefined);
    const pump = (): void => {
      while (!socket.destroyed && socket.write(chunk));
      if (!socket.destroyed) socket.once("drain", pump);
    };
    pump();
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  return typeof address === "object" && address ? address.port : 0;
}

const finalReply = (lines: string[]): boolean => lines.some((l) => /^\d{3} /.test(l));

describe("line socket buffer", () => {
  for (const [what, chunk] of [
    ["one endless line", "x".repeat(4096)],
    ["endless continuation lines", "250-more\r\n".repeat(400)],
  ] as const) {
    it(`cuts off ${what} at the limit`, async () => {
      const port = await endless(chunk);
      const conn = await openLineSocket({ host: "127.0.0.1", port, timeoutMs: 30_000, maxBufferBytes: 64 * 1024 });
      try {
        await expect(conn.readUntil(finalReply, 30_000, "greeting")).rejects.toThrow(
          /sent over 65536 bytes without completing a reply/,
        );
      } finally {
        conn.close();
      }
    });
  }
});

/** A server that accepts and never speaks (no greeting, no TLS handshake); hands out its sockets. */
async function tarpit(greeting = ""): Promise<{ port: number; accepted: Promise<Socket> }> {
  let take: (s: Socket) => void = () => undefined;
  const accepted = new Promise<Socket>((resolve) => (take = resolve));
  server = createServer((socket) => {
    socket.on("error", () => undefined);
    // Read and drop what the client sends, so its FIN (the probe hanging up) is seen.
    socket.resume();
    if (greeting) socket.write(greeting);
    take(socket);
  });
  await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  return { port: typeof address === "object" && address ? address.port : 0, accepted };
}

/** Resolves once the server side sees the connection closed (it never closes it itself). */
const closedByClient = (socket: Socket): Promise<void> =>
  new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("the probe left the timed-out connection open"));
    }, 10_000);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });

describe("line socket deadlines", () => {
  it("a stalled implicit-TLS handshake times out and the probe closes that connection", async () => {
    const { port, accepted } = await tarpit();
    await expect(
      openLineSocket({ host: "127.0.0.1", port, timeoutMs: 300, tls: { rejectUnauthorized: false } }),
    ).rejects.toMatchObject({ code: "deadline_exceeded" });
    await closedByClient(await accepted);
  });

  it("a stalled STARTTLS handshake times out and the probe closes that connection", async () => {
    const { port, accepted } = await tarpit("220 tarpit ESMTP\r\n");
    const conn = await openLineSocket({ host: "127.0.0.1", port, timeoutMs: 5_000 });
    await conn.readUntil(finalReply, 5_000, "greeting");
    await expect(conn.upgrade({ rejectUnauthorized: false }, 300)).rejects.toMatchObject({
      code: "deadline_exceeded",
    });
    await closedByClient(await accepted);
  });
});
