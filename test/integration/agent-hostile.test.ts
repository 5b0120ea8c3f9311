// The agent daemon survives hostile clients (issue 10): a real `netserva-mail-agent serve` process
// on loopback, with its gRPC port and its /metrics port under garbage bytes, TLS handshakes cut
// off mid-way (closed and reset), garbage inside a finished TLS session, health streams and large
// calls cancelled mid-response, and a client process killed while the agent writes it 64 large
// answers. After each, the agent still answers a Ping, and its last-resort counter (the net under
// the per-connection handlers) stayed at 0: every error was handled on its own connection.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { openSync, readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect as tcpConnect, type Socket } from "node:net";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { freePort, startHarness, type Harness } from "../helpers/controller-harness.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const VNODE = "hostile1";
let harness: Harness;
let agent: ChildProcess;
let logFile = "";
let port = 0;
let metricsPort = 0;
const tls = { ca: "", cert: "", key: "" };
const files = { ca: "", cert: "", key: "" };

const client = () =>
  createClient(
    AgentService,
    createGrpcTransport({ baseUrl: `https://127.0.0.1:${port}`, nodeOptions: { ...tls, servername: VNODE } }),
  );
const meta = (requestId: string) => create(CommandMetaSchema, { requestId });

function scrape(): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port: metricsPort, path: "/metrics", ...tls, servername: VNODE, timeout: 10_000 },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve(body));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** Both kinds of the agent's last-resort counter (NaN when the metric is missing). */
async function lastResort(): Promise<Record<string, number>> {
  const body = await scrape();
  const count = (kind: string): number =>
    Number(new RegExp(`^netserva_agent_last_resort_total\\{kind="${kind}"[^}]*\\} (\\d+)$`, "m").exec(body)?.[1]);
  return { uncaught_exception: count("uncaught_exception"), unhandled_rejection: count("unhandled_rejection") };
}

/** The agent is alive and answers a fresh client. */
async function answers(): Promise<void> {
  expect(agent.exitCode, `agent exited; see ${logFile}`).toBeNull();
  const r = await client().ping({ meta: meta(`alive-${randomBytes(4).toString("hex")}`), payload: new Uint8Array() });
  expect(r.agentTimeUnixMs).toBeGreaterThan(0n);
  expect(await lastResort()).toEqual({ uncaught_exception: 0, unhandled_rejection: 0 });
}

/** Resolves when the socket closes (the agent hung up on it, or we did). */
const closed = (s: Socket): Promise<void> => new Promise((resolve) => s.once("close", () => resolve()));

async function waitForPort(p: number): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (agent.exitCode !== null) throw new Error(`agent exited with ${agent.exitCode}; see ${logFile}`);
    const open = await new Promise<boolean>((resolve) => {
      const s = tcpConnect({ host: "127.0.0.1", port: p }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`agent did not listen on ${p}; see ${logFile}`);
}

describe("the agent daemon survives hostile clients", () => {
  beforeAll(async () => {
    harness = await startHarness();
    port = await freePort();
    metricsPort = await freePort();
    const { home } = await harness.enrollVnode(VNODE, `127.0.0.1:${port}`, "agent-home");
    files.ca = join(harness.home, "ca", "ca.crt");
    files.cert = join(harness.home, "controller.crt");
    files.key = join(harness.home, "controller.key");
    tls.ca = readFileSync(files.ca, "utf8");
    tls.cert = readFileSync(files.cert, "utf8");
    tls.key = readFileSync(files.key, "utf8");
    logFile = join(harness.dir, "agent.log");
    const log = openSync(logFile, "a");
    agent = spawn(
      process.execPath,
      [
        join(ROOT, "bin", "netserva-mail-agent.js"),
        "serve",
        "--home",
        home,
        "--listen",
        `127.0.0.1:${port}`,
        "--metrics-listen",
        `127.0.0.1:${metricsPort}`,
      ],
      { stdio: ["ignore", log, log] },
    );
    await waitForPort(port);
    await waitForPort(metricsPort);
    await answers();
  });

  afterAll(async () => {
    if (agent && agent.exitCode === null) {
      const exited = new Promise((resolve) => agent.once("exit", resolve));
      agent.kill("SIGTERM");
      await exited;
    }
    await harness?.close();
  });

  it("garbage bytes on the gRPC and metrics ports, then a hang-up or a reset", async () => {
    for (const p of [port, metricsPort]) {
      for (let i = 0; i < 6; i++) {
        const s = tcpConnect({ host: "127.0.0.1", port: p });
        s.on("error", () => undefined);
        const done = closed(s);
        // A TLS server may wait for the rest of a record the garbage announced: we hang up.
        s.once("connect", () => s.write(randomBytes(4096), () => (i % 2 === 0 ? s.end() : s.resetAndDestroy())));
        if (i % 2 === 0) setTimeout(() => s.destroy(), 200);
        await done;
      }
    }
    await answers();
  });

  it("TLS handshakes cut off mid-way (closed, and reset after a partial ClientHello)", async () => {
    for (const p of [port, metricsPort]) {
      for (let i = 0; i < 5; i++) {
        // A real ClientHello, then the client goes away before the handshake ends.
        const t = tlsConnect({ host: "127.0.0.1", port: p, ...tls, servername: VNODE, ALPNProtocols: ["h2"] });
        t.on("error", () => undefined);
        const gone = closed(t);
        t.once("connect", () => t.destroy());
        await gone;
        // A ClientHello record header promising 512 bytes, 100 of them, then a TCP reset.
        const s = tcpConnect({ host: "127.0.0.1", port: p });
        s.on("error", () => undefined);
        const reset = closed(s);
        s.once("connect", () => {
          s.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), randomBytes(100)]), () =>
            s.resetAndDestroy(),
          );
        });
        await reset;
      }
    }
    await answers();
  });

  it("garbage inside a finished TLS session (no HTTP/2 preface), then a hang-up", async () => {
    for (let i = 0; i < 6; i++) {
      const t = tlsConnect({ host: "127.0.0.1", port, ...tls, servername: VNODE, ALPNProtocols: ["h2"] });
      t.on("error", () => undefined);
      const done = closed(t);
      t.once("secureConnect", () => t.write(randomBytes(8192), () => setTimeout(() => t.destroy(), 100)));
      await done;
    }
    await answers();
  });

  it("health streams and large calls cancelled mid-response", async () => {
    const c = client();
    for (let i = 0; i < 5; i++) {
      const abort = new AbortController();
      let received = 0;
      try {
        for await (const report of c.watchHealth({ intervalMs: 200 }, { signal: abort.signal })) {
          expect(report.vnode).toBe(VNODE);
          received += 1;
          if (received === 2) abort.abort();
        }
      } catch {
        // the abort ends the iteration with an error on our side
      }
      expect(received).toBe(2);
    }
    const payload = new Uint8Array(60 * 1024).fill(0x62);
    for (let i = 0; i < 20; i++) {
      const abort = new AbortController();
      const call = c.ping(
        { meta: meta(`cancel-${i}-${randomBytes(4).toString("hex")}`), payload },
        { signal: abort.signal },
      );
      setImmediate(() => abort.abort());
      await call.catch(() => undefined);
    }
    await answers();
  });

  it("a client process killed while the agent writes it 64 large answers", async () => {
    for (let i = 0; i < 3; i++) {
      const flood = spawn(
        process.execPath,
        [
          join(ROOT, "test", "helpers", "ping-flood-client.ts"),
          `127.0.0.1:${port}`,
          VNODE,
          files.ca,
          files.cert,
          files.key,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      const killed = new Promise<NodeJS.Signals | null>((resolve) =>
        flood.once("exit", (_c, signal) => resolve(signal)),
      );
      flood.stdout?.once("data", () => flood.kill("SIGKILL"));
      expect(await killed).toBe("SIGKILL");
    }
    await answers();
  });
});
