// A TCP forwarder the test can cut and restore: in front of PostgreSQL it makes the database
// unreachable for one process without stopping the shared cluster other test files use. Two
// kinds of outage: cut() resets every connection and refuses new ones (a stopped server);
// blackhole() answers nothing at all — connections are accepted and then hear nothing, open ones
// go silent — as a dropped route or a firewall that drops packets does.
import { createServer, connect } from "node:net";
import type { Server, Socket } from "node:net";

export interface TcpCut {
  readonly port: number;
  /** Resets every forwarded connection and refuses new ones until restore(). */
  cut(): void;
  /** Silence until restore(): nothing is forwarded either way, nothing is closed. */
  blackhole(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpCut(target: { host: string; port: number }): Promise<TcpCut> {
  const open = new Set<Socket>();
  /** Connections accepted during a blackhole: held open and silent. */
  const held = new Set<Socket>();
  const pairs = new Set<[Socket, Socket]>();
  let mode: "open" | "cut" | "blackhole" = "open";
  const server: Server = createServer((client) => {
    client.on("error", () => undefined);
    if (mode === "cut") {
      client.resetAndDestroy();
      return;
    }
    if (mode === "blackhole") {
      held.add(client);
      client.once("close", () => held.delete(client));
      client.pause();
      return;
    }
    const upstream = connect(target);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    open.add(client).add(upstream);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const forget = (): void => void (open.delete(client), open.delete(upstream), pairs.delete(pair));
    client.once("close", () => (upstream.destroy(), forget()));
    upstream.once("close", () => (client.destroy(), forget()));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("forwarder has no port");
  const cutAll = (): void => {
    mode = "cut";
    for (const socket of [...open, ...held]) socket.resetAndDestroy();
    open.clear();
    held.clear();
  };
  return {
    port: address.port,
    cut: cutAll,
    blackhole() {
      mode = "blackhole";
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    restore() {
      // What was held silent is dropped (a real route coming back finds those connections dead
      // on one side or the other); what was forwarded before resumes with what it buffered.
      for (const socket of held) socket.resetAndDestroy();
      held.clear();
      if (mode === "blackhole")
        for (const [client, upstream] of pairs) {
          client.pipe(upstream);
          upstream.pipe(client);
        }
      mode = "open";
    },
    close() {
      cutAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
