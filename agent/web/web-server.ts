// The agent's HTTPS listener for MTA-STS, autoconfig and autodiscover. Every step is bounded so
// one bad client never hurts the agent: the TLS handshake, the headers and the whole request each
// have a timeout, headers and bodies a size limit, connections a cap; errors end that connection
// and nothing else. The certificate is chosen per SNI name (cert-map.ts); what is answered comes
// from served-site.ts. Both can be swapped while serving (a new desired state, a renewal).
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { SecureContext } from "node:tls";
import type { Logger } from "../../common/log.ts";
import type { CertPair } from "./cert-map.ts";
import { answer, type Site } from "./served-site.ts";
import { kindOfPath, type WebStats } from "./web-stats.ts";
import { guardConnections } from "./connection-guard.ts";

export const WEB_LIMITS = {
  handshakeMs: 10_000,
  headersMs: 10_000,
  requestMs: 15_000,
  idleMs: 20_000,
  keepAliveMs: 5_000,
  maxHeaderBytes: 8 * 1024,
  maxBodyBytes: 16 * 1024,
  /** Open connections in all, and from one address: one client (a slowloris holding sockets
   *  until the header timeout) cannot take the places of the others. */
  maxConnections: 4096,
  maxPerAddress: 32,
  /** How often expired header/request timers are checked (Node's default is 30 s). */
  checkEveryMs: 1_000,
};

export type WebLimits = typeof WEB_LIMITS;

export interface WebContent {
  readonly site: Site;
  readonly choose: (name: string | undefined) => SecureContext | undefined;
  /** The certificate a client without SNI gets. */
  readonly fallback: CertPair;
}

export interface WebListener {
  readonly host: string;
  readonly port: number;
  /** Serve new content from the next connection on (open ones finish with theirs). */
  update(content: WebContent): void;
  close(): Promise<void>;
}

function requestHost(req: IncomingMessage): string {
  const header = req.headers.host ?? "";
  const name = header.startsWith("[") ? "" : (header.split(":")[0] ?? "");
  const sni = (req.socket as { servername?: string | false }).servername;
  return (name || (typeof sni === "string" ? sni : "")).toLowerCase();
}

export async function startWebServer(o: {
  host: string;
  port: number;
  content: WebContent;
  log?: Logger;
  /** Tighter limits (tests); the rest stay WEB_LIMITS. */
  limits?: Partial<WebLimits>;
  stats?: WebStats;
}): Promise<WebListener> {
  let content = o.content;
  const L: WebLimits = { ...WEB_LIMITS, ...o.limits };
  const server: Server = createServer({
    cert: content.fallback.chainPem,
    key: content.fallback.keyPem,
    minVersion: "TLSv1.2",
    handshakeTimeout: L.handshakeMs,
    maxHeaderSize: L.maxHeaderBytes,
    requestTimeout: L.requestMs,
    headersTimeout: L.headersMs,
    keepAliveTimeout: L.keepAliveMs,
    connectionsCheckingInterval: L.checkEveryMs,
    SNICallback: (name, done) => {
      const ctx = content.choose(name);
      if (ctx) done(null, ctx);
      else done(new Error(`no certificate for ${name}`));
    },
  });
  guardConnections(server, L);
  // A client that breaks the protocol loses its connection; the agent carries on.
  server.on("tlsClientError", (err, socket) => {
    o.stats?.tlsFailure();
    o.log?.debug("web tls client error", { error: err.message });
    socket.destroy();
  });
  server.on("clientError", (_err, socket) => socket.destroy());
  server.on("error", (err) => o.log?.warn("web listener error", { error: err.message }));

  const respond = (res: ServerResponse, status: number, type: string, body: string, head: boolean, path = ""): void => {
    o.stats?.request(kindOfPath(path), status);
    res.writeHead(status, {
      "content-type": type,
      "content-length": Buffer.byteLength(body),
      "cache-control": status === 200 ? "max-age=300" : "no-store",
      "x-content-type-options": "nosniff",
    });
    res.end(head ? undefined : body);
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    req.on("error", () => req.socket.destroy());
    res.on("error", () => req.socket.destroy());
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > L.maxBodyBytes) {
      res.setHeader("connection", "close");
      respond(res, 413, "text/plain; charset=utf-8", "request body too large\n", false);
      req.socket.end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > L.maxBodyBytes) {
        req.socket.destroy(); // chunked past the limit: no answer is owed
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (size > L.maxBodyBytes) return;
      try {
        const url = new URL(req.url ?? "/", "https://localhost");
        const a = answer(content.site, {
          method: req.method ?? "GET",
          host: requestHost(req),
          path: url.pathname,
          query: url.searchParams,
          body: Buffer.concat(chunks).toString("utf8"),
        });
        respond(res, a.status, a.type, a.body, req.method === "HEAD", url.pathname);
      } catch (error) {
        o.log?.warn("web request failed", { error: error instanceof Error ? error.message : String(error) });
        if (!res.headersSent) respond(res, 500, "text/plain; charset=utf-8", "internal error\n", false);
      }
    });
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
  const port = typeof address === "object" && address ? address.port : o.port;
  return {
    host: o.host,
    port,
    update(next) {
      if (next.fallback !== content.fallback)
        server.setSecureContext({ cert: next.fallback.chainPem, key: next.fallback.keyPem, minVersion: "TLSv1.2" });
      content = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
