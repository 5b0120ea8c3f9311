// The SMTP/IMAP probe keeps at most a bounded number of bytes of a server's output: a server
// that streams without ever completing a reply is cut off with an error that says so.
import { createServer } from "node:net";
import type { Server } from "node:net";
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
