// The agent's plain-HTTP listener for ACME HTTP-01 (RFC 8555 §8.3): it answers only
// GET/HEAD /.well-known/acme-challenge/<token> with the key authorization the controller pushed
// in the desired state, 404 for anything else, and is bounded like the HTTPS listener (header and
// request timeouts, header size, connection caps) so one bad client only ends its own connection.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Logger } from "../../common/log.ts";
import { WEB_LIMITS, type WebLimits } from "./web-server.ts";
import type { WebStats } from "./web-stats.ts";
import { guardConnections } from "./connection-guard.ts";

const PREFIX = "/.well-known/acme-challenge/";
const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;

export interface ChallengeListener {
  readonly host: string;
  readonly port: number;
  /** The challenges answered from now on: token → key authorization. */
  update(challenges: ReadonlyMap<string, string>): void;
  close(): Promise<void>;
}

export async function startChallengeServer(o: {
  host: string;
  port: number;
  challenges: ReadonlyMap<string, string>;
  log?: Logger;
  limits?: Partial<WebLimits>;
  stats?: WebStats;
}): Promise<ChallengeListener> {
  let challenges = o.challenges;
  const L: WebLimits = { ...WEB_LIMITS, ...o.limits };
  const server: Server = createServer({
    maxHeaderSize: L.maxHeaderBytes,
    requestTimeout: L.requestMs,
    headersTimeout: L.headersMs,
    keepAliveTimeout: L.keepAliveMs,
    connectionsCheckingInterval: L.checkEveryMs,
  });
  guardConnections(server, L);
  server.on("clientError", (_err, socket) => socket.destroy());
  server.on("error", (err) => o.log?.warn("http-01 listener error", { error: err.message }));
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    req.on("error", () => req.socket.destroy());
    res.on("error", () => req.socket.destroy());
    req.resume(); // a body is never read: drained, bounded by the request timeout
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const token = path.startsWith(PREFIX) ? path.slice(PREFIX.length) : "";
    const value = TOKEN.test(token) ? challenges.get(token) : undefined;
    const ok = value !== undefined && (req.method === "GET" || req.method === "HEAD");
    const body = ok ? value : "not found\n";
    res.writeHead(ok ? 200 : 404, {
      "content-type": ok ? "application/octet-stream" : "text/plain; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
    });
    res.end(req.method === "HEAD" ? undefined : body);
    o.stats?.request(token ? "acme-challenge" : "other", ok ? 200 : 404);
    o.log?.debug("http-01 request", { token: token.slice(0, 64), found: ok });
  });
  await new Promise<void>((resolve, reject) => {
    const fail = (err: Error): void => reject(err);
    server.once("error", fail);
    server.listen(o.port, o.host, () => {
      server.off("error", fail);
      resolve();
    });
  });
  const address = server.address();
  return {
    host: o.host,
    port: typeof address === "object" && address ? address.port : o.port,
    update: (next) => void (challenges = next),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
