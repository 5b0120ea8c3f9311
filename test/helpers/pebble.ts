// Debian's Pebble (a test ACME server, RFC 8555) for tests: its own HTTPS certificate for
// 127.0.0.1 (made with openssl, no shell), a config on free loopback ports, certificates that live
// `validitySeconds`, and DNS-01 validation asking the given DNS server (the test's PowerDNS).
// `front` is a small TCP pass-through in front of it that a test can take down and bring back
// ("the ACME server is down") without Pebble losing its accounts and root; Pebble builds its URLs
// from the Host it was asked for, so clients only ever see the front's port. Pebble's issuing root
// is fetched from its management endpoint.
// With `injecting: true` the front is instead a small HTTPS proxy (Pebble's own certificate, so
// `--server-ca` stays the same) that can answer for Pebble: Pebble implements neither rate-limit
// answers nor ACME renewal information (ARI, RFC 9773), so a test injects them here — `inject()`
// answers chosen requests itself (e.g. a 429 rateLimited problem for new orders), and
// `setRenewalInfo()` adds `renewalInfo` to the directory and answers `/renewal-info/<cert ID>`.
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request, createServer as createHttpsServer } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { freePort } from "./controller-harness.ts";

export const PEBBLE_BINARY = "/usr/bin/pebble";
export const pebbleAvailable = existsSync(PEBBLE_BINARY);

export interface Pebble {
  /** The directory URL clients use (through the front). */
  readonly directoryUrl: string;
  /** PEM file with the CA of Pebble's own HTTPS certificate (`--server-ca`). */
  readonly serverCaFile: string;
  /** PEM of the root Pebble issues under (what mail clients must trust). */
  rootPem(): Promise<string>;
  /** Takes the front down (connections refused) or brings it back on the same port. */
  setUp(up: boolean): Promise<void>;
  readonly logFile: string;
  stop(): Promise<void>;
  /** Injecting front only: answers requests the injector picks instead of Pebble (undefined = none). */
  inject(injector: Injector | undefined): void;
  /** Injecting front only: offer ARI with these answers per certificate ID (undefined = no ARI). */
  setRenewalInfo(answer: ((certId: string) => InjectedAnswer) | undefined): void;
  /** Injecting front only: the requests it saw (method, path, body), oldest first. */
  readonly seen: Array<{ method: string; path: string; body: string }>;
}

export interface InjectedAnswer {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}
export type Injector = (request: { method: string; path: string }) => InjectedAnswer | undefined;

export const RENEWAL_INFO_PATH = "/renewal-info";

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(file, args, (error, _stdout, stderr) => (error ? reject(new Error(`${file}: ${stderr}`)) : resolve())),
  );
}

function get(url: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: new Agent({ ca }), timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}

export async function startPebble(options: {
  dnsServer: string;
  validitySeconds: number;
  injecting?: boolean;
  /** Where Pebble's HTTP-01 validation connects (port 80 of what the name resolves to, for a
   *  vnode's agent in a namespace); an unused port by default (DNS-01 only). */
  httpPort?: number;
}): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), "nsm-pebble-"));
  const cert = join(dir, "pebble.crt");
  const key = join(dir, "pebble.key");
  await run("/usr/bin/openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=pebble test server",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "-keyout",
    key,
    "-out",
    cert,
  ]);
  const [port, managementPort, frontPort] = [await freePort(), await freePort(), await freePort()];
  const config = join(dir, "pebble.json");
  writeFileSync(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: cert,
        privateKey: key,
        // Unless a test answers HTTP-01, unprivileged ports nobody answers on (Pebble wants them).
        httpPort: options.httpPort ?? (await freePort()),
        tlsPort: await freePort(),
        ocspResponderURL: "",
        externalAccountBindingRequired: false,
        certificateValidityPeriod: options.validitySeconds,
      },
    }),
  );
  const logFile = join(dir, "pebble.log");
  const log = openSync(logFile, "a");
  const child: ChildProcess = spawn(PEBBLE_BINARY, ["-config", config, "-dnsserver", options.dnsServer], {
    stdio: ["ignore", log, log],
    env: { ...process.env, PEBBLE_VA_NOSLEEP: "1" },
  });
  const caPem = readFileSync(cert, "utf8");

  // The injecting front: answers what the test injects, forwards the rest (Host kept, so Pebble's
  // URLs name the front).
  let injector: Injector | undefined;
  let renewalInfo: ((certId: string) => InjectedAnswer) | undefined;
  const seen: Array<{ method: string; path: string; body: string }> = [];
  const upstreamAgent = new Agent({ ca: caPem, keepAlive: false });
  const answer = (res: ServerResponse, a: InjectedAnswer): void => {
    const body = typeof a.body === "string" ? a.body : JSON.stringify(a.body);
    res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
    res.end(body);
  };
  const forward = (req: IncomingMessage, res: ServerResponse, path: string, body: Buffer): void => {
    const isDirectory = req.method === "GET" && path === "/dir" && renewalInfo !== undefined;
    const up = request(
      { host: "127.0.0.1", port, path, method: req.method, headers: req.headers, agent: upstreamAgent },
      (upRes) => {
        if (!isDirectory) {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          return;
        }
        let text = "";
        upRes.setEncoding("utf8");
        upRes.on("data", (d: string) => (text += d));
        upRes.on("end", () => {
          const directory = JSON.parse(text) as Record<string, unknown>;
          directory.renewalInfo = `https://${req.headers.host ?? ""}${RENEWAL_INFO_PATH}`;
          answer(res, { status: upRes.statusCode ?? 200, body: directory });
        });
      },
    );
    up.on("error", () => res.destroy());
    up.end(body);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = req.url ?? "/";
    const method = req.method ?? "GET";
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    seen.push({ method, path, body: body.toString("utf8") });
    const injected = injector?.({ method, path });
    if (injected) {
      answer(res, injected);
      return;
    }
    if (path.startsWith(`${RENEWAL_INFO_PATH}/`)) {
      const id = decodeURIComponent(path.slice(RENEWAL_INFO_PATH.length + 1));
      answer(res, renewalInfo ? renewalInfo(id) : { status: 404, body: { detail: "no ARI" } });
      return;
    }
    forward(req, res, path, body);
  };
  const certPem = readFileSync(cert);
  const keyPem = readFileSync(key);

  // The front: every connection piped to Pebble (or, injecting, every request); down = not listening.
  let front: Server | undefined;
  const sockets = new Set<Socket>();
  const setUp = async (up: boolean): Promise<void> => {
    if (up && !front && options.injecting) {
      const server = createHttpsServer({ cert: certPem, key: keyPem }, (req, res) => {
        handle(req, res).catch(() => res.destroy());
      });
      server.on("connection", (socket: Socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(frontPort, "127.0.0.1", () => resolve());
      });
      front = server;
    } else if (up && !front) {
      const server = createServer((client) => {
        const upstream = connect({ host: "127.0.0.1", port });
        sockets.add(client).add(upstream);
        const drop = (): void => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on("error", drop).on("close", drop);
        upstream.on("error", drop).on("close", drop);
        client.pipe(upstream).pipe(client);
      });
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(frontPort, "127.0.0.1", () => resolve());
      });
      front = server;
    } else if (!up && front) {
      const server = front;
      front = undefined;
      for (const s of sockets) s.destroy();
      sockets.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  };
  const stop = async (): Promise<void> => {
    await setUp(false);
    if (child.exitCode === null && child.pid !== undefined) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(child.pid, "SIGTERM");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`pebble exited: ${readFileSync(logFile, "utf8").slice(-2000)}`);
      const ok = await get(`https://127.0.0.1:${port}/dir`, caPem).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`pebble not ready; see ${logFile}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await setUp(true);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    directoryUrl: `https://127.0.0.1:${frontPort}/dir`,
    serverCaFile: cert,
    async rootPem() {
      const r = await get(`https://127.0.0.1:${managementPort}/roots/0`, caPem);
      if (r.status !== 200) throw new Error(`pebble roots: ${r.status}`);
      return r.body;
    },
    setUp,
    logFile,
    stop,
    inject: (next) => void (injector = next),
    setRenewalInfo: (next) => void (renewalInfo = next),
    seen,
  };
}
