// Serves /metrics over HTTPS. Scrapers must present a certificate from the controller's CA
// (controller or monitor role): metrics reveal fleet details, so they are not public.
import { createServer } from "node:https";
import type { Server } from "node:https";
import type { TLSSocket } from "node:tls";
import type { Registry } from "prom-client";
import { peerIdentity } from "../../common/identity/peer.ts";
import type { Logger } from "../../common/log.ts";
import type { Revocations } from "../server/revocations.ts";

export interface MetricsServerOptions {
  registry: Registry;
  caPem: string;
  certPem: string;
  keyPem: string;
  revocations: Revocations;
  host: string;
  port: number;
  log?: Logger;
}

export interface MetricsServer {
  readonly port: number;
  setIdentity(certPem: string, keyPem: string): void;
  setCa(caPem: string): void;
  close(): Promise<void>;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const guarded = new WeakSet<TLSSocket>();
  /** A keep-alive connection from a certificate revoked later is closed when the list arrives. */
  const guard = (socket: TLSSocket, serial: string): void => {
    if (guarded.has(socket)) return;
    guarded.add(socket);
    const forget = options.revocations.guard(serial, () => socket.destroy());
    socket.once("close", forget);
  };
  const server: Server = createServer(
    {
      ca: options.caPem,
      cert: options.certPem,
      key: options.keyPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    },
    (req, res) => {
      const allowed = (() => {
        try {
          const peer = peerIdentity((req.socket as TLSSocket).getPeerCertificate());
          guard(req.socket as TLSSocket, peer.serial);
          return (peer.role === "controller" || peer.role === "monitor") && !options.revocations.has(peer.serial);
        } catch {
          return false;
        }
      })();
      if (!allowed) {
        res.writeHead(403).end("forbidden\n");
        return;
      }
      if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
        res.writeHead(404).end("not found\n");
        return;
      }
      options.registry.metrics().then(
        (body) => res.writeHead(200, { "content-type": options.registry.contentType }).end(body),
        (error: unknown) => res.writeHead(500).end(String(error)),
      );
    },
  );
  // A client's broken connection is its own: node:https answers 'clientError' by destroying that
  // socket, and a failed handshake ('tlsClientError') only concerns the scraper that sent it.
  server.on("tlsClientError", (error, socket) =>
    options.log?.info("metrics: TLS handshake failed", { peer: socket.remoteAddress ?? null, error: error.message }),
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  // After listening, a server error (e.g. EMFILE on accept) is logged, not thrown: the next
  // scrape is accepted again once descriptors are free.
  server.on("error", (error) => options.log?.warn("metrics server error", { error: error.message }));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  const current = { ca: options.caPem, cert: options.certPem, key: options.keyPem, minVersion: "TLSv1.2" as const };
  return {
    port,
    setIdentity(certPem, keyPem) {
      Object.assign(current, { cert: certPem, key: keyPem });
      server.setSecureContext(current);
    },
    setCa(caPem) {
      current.ca = caPem;
      server.setSecureContext(current);
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
