// A TCP forwarder the test can cut and restore: in front of PostgreSQL it makes the database
// unreachable for one process (every open connection reset, every new one refused) without
// stopping the shared cluster other test files use.
import { createServer, connect } from "node:net";
import type { Server, Socket } from "node:net";

export interface TcpCut {
  readonly port: number;
  /** Resets every forwarded connection and refuses new ones until restore(). */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpCut(target: { host: string; port: number }): Promise<TcpCut> {
  const open = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((client) => {
    client.on("error", () => undefined);
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(target);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    open.add(client).add(upstream);
    const forget = (): void => void (open.delete(client), open.delete(upstream));
    client.once("close", () => (upstream.destroy(), forget()));
    upstream.once("close", () => (client.destroy(), forget()));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("forwarder has no port");
  const cutAll = (): void => {
    cut = true;
    for (const socket of open) socket.resetAndDestroy();
    open.clear();
  };
  return {
    port: address.port,
    cut: cutAll,
    restore() {
      cut = false;
    },
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
