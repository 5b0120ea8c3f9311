// The connection limits both of the agent's web listeners (HTTPS, and HTTP-01's plain HTTP) put
// on a server: at most `maxPerAddress` open connections from one client address (a slowloris
// from one host cannot fill `maxConnections` for everyone), and an idle connection dropped.
import type { Server as HttpServer } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Socket } from "node:net";

export function guardConnections(
  server: HttpServer | HttpsServer,
  limits: { maxConnections: number; maxPerAddress: number; idleMs: number },
): void {
  server.maxConnections = limits.maxConnections;
  const perAddress = new Map<string, number>();
  server.on("connection", (socket: Socket) => {
    const from = socket.remoteAddress ?? "";
    const n = (perAddress.get(from) ?? 0) + 1;
    if (n > limits.maxPerAddress) {
      socket.destroy();
      return;
    }
    perAddress.set(from, n);
    socket.once("close", () => {
      const left = (perAddress.get(from) ?? 1) - 1;
      if (left <= 0) perAddress.delete(from);
      else perAddress.set(from, left);
    });
  });
  server.setTimeout(limits.idleMs, (socket: Socket) => socket.destroy());
}
