// Benchmark: a Ping over (a) the real mutual-TLS agent channel (controller client → agent daemon),
// (b) a bare grpc-js Ping server with the same certificates and no auth/record/metrics/log work,
// (c) `ssh root@127.0.0.1 bash -s` against a throwaway sshd. Loopback only; run by
// scripts/bench-channel. Prints a table and two ratios, then cleans up everything it started.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { create } from "@bufbuild/protobuf";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall } from "@grpc/grpc-js";
import { AgentService, PingRequestSchema, PingResponseSchema } from "../common/gen/netserva/mail/v1/agent_pb.ts";
import type { PingRequest, PingResponse } from "../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../common/gen/netserva/mail/v1/command_pb.ts";
import { grpcServiceDefinition } from "../common/rpc/grpc-service.ts";
import { createAgentClient } from "../controller/fleet/agent-client.ts";
import type { AgentClient } from "../controller/fleet/agent-client.ts";
import { freePort, startHarness } from "../test/helpers/controller-harness.ts";
import { spawnThrowawaySshd } from "./throwaway-sshd.ts";
import type { Harness } from "../test/helpers/controller-harness.ts";

const GRPC_SEQ = 2000;
const GRPC_CONC_TOTAL = 20000;
const GRPC_INFLIGHT = 64;
const SSH_SEQ = 30;
const SSH_CONC_TOTAL = 40;
const SSH_INFLIGHT = 8;

interface Result {
  name: string;
  seqN: number;
  p50: number;
  p99: number;
  seqRate: number;
  concN: number;
  inflight: number;
  concRate: number;
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? 0;
}

const ROUNDS = 7;
const ROUND_CALLS = 8000;

async function concurrentRate(op: () => Promise<void>, total: number, inflight: number): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      await op();
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  return (total * 1000) / (performance.now() - start);
}

async function measure(
  name: string,
  op: () => Promise<void>,
  seqN: number,
  concN: number,
  inflight: number,
  warmup: number,
): Promise<Result> {
  for (let i = 0; i < warmup; i++) await op();
  const lat: number[] = [];
  const seqStart = performance.now();
  for (let i = 0; i < seqN; i++) {
    const t = performance.now();
    await op();
    lat.push(performance.now() - t);
  }
  const seqMs = performance.now() - seqStart;
  lat.sort((a, b) => a - b);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < concN) {
      next++;
      await op();
    }
  };
  const concStart = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  const concMs = performance.now() - concStart;
  return {
    name,
    seqN,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    seqRate: (seqN * 1000) / seqMs,
    concN,
    inflight,
    concRate: (concN * 1000) / concMs,
  };
}

const pingOp = (client: AgentClient) => async (): Promise<void> => {
  const requestId = randomUUID();
  const response = await client.call(
    "ping",
    create(PingRequestSchema, { meta: create(CommandMetaSchema, { requestId }) }),
  );
  if (response.requestId !== requestId) throw new Error("ping answered the wrong request id");
};

function sshOp(port: number, key: string) {
  return () =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(
        "ssh",
        [
          "-p",
          String(port),
          "-o",
          "StrictHostKeyChecking=no",
          "-o",
          "UserKnownHostsFile=/dev/null",
          "-o",
          "BatchMode=yes",
          "-o",
          "LogLevel=ERROR",
          "-i",
          key,
          "root@127.0.0.1",
          "bash",
          "-s",
        ],
        { stdio: ["pipe", "pipe", "pipe"] },
      );
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => void (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => void (err += d.toString()));
      child.on("error", reject);
      child.on("close", (code) => {
        if (code === 0 && out.trim() === "pong") resolve();
        else reject(new Error(`ssh exited ${code}: ${err.trim()}`));
      });
      child.stdin.end("echo pong\n");
    });
}

async function startSshd(dir: string): Promise<{ port: number; key: string; proc: ChildProcess }> {
  const { port, key, proc } = spawnThrowawaySshd(dir, await freePort());
  const op = sshOp(port, key);
  for (let i = 0; ; i++) {
    try {
      await op();
      break;
    } catch (error) {
      if (i >= 50 || proc.exitCode !== null) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { port, key, proc };
}

const ms = (v: number): string => v.toFixed(3);
const rate = (v: number): string => v.toFixed(v < 10 ? 1 : 0);

async function main(): Promise<void> {
  let harness: Harness | undefined;
  let bare: Server | undefined;
  const clients: AgentClient[] = [];
  let sshd: ChildProcess | undefined;
  const sshDir = mkdtempSync(join(tmpdir(), "nsm-bench-ssh-"));
  try {
    harness = await startHarness({ healthIntervalMs: 5000, staleAfterMs: 15_000 }); // production cadence: the controller shares this process;
    const { address } = await harness.addAgent("bench");
    const caPem = readFileSync(join(harness.home, "ca", "ca.crt"), "utf8");
    const certPem = readFileSync(join(harness.home, "controller.crt"), "utf8");
    const keyPem = readFileSync(join(harness.home, "controller.key"), "utf8");

    const channel = createAgentClient({ vnode: "bench", address, caPem, certPem, keyPem });
    clients.push(channel);

    bare = new Server();
    bare.addService(grpcServiceDefinition(AgentService), {
      ping: (call: ServerUnaryCall<PingRequest, PingResponse>, callback: sendUnaryData<PingResponse>) => {
        callback(null, create(PingResponseSchema, { requestId: call.request.meta?.requestId ?? "" }));
      },
    });
    const agentDir = join(harness.dir, "agent-bench");
    const creds = ServerCredentials.createSsl(
      Buffer.from(caPem),
      [
        {
          private_key: readFileSync(join(agentDir, "agent.key")),
          cert_chain: readFileSync(join(agentDir, "agent.crt")),
        },
      ],
      true,
    );
    const server = bare;
    const barePort = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", creds, (e, p) => (e ? reject(e) : resolve(p))),
    );
    const bareClient = createAgentClient({ vnode: "bench", address: `127.0.0.1:${barePort}`, caPem, certPem, keyPem });
    clients.push(bareClient);

    const results: Result[] = [];
    results.push(
      await measure("channel (agent daemon)", pingOp(channel), GRPC_SEQ, GRPC_CONC_TOTAL, GRPC_INFLIGHT, 500),
    );
    results.push(
      await measure("bare grpc-js server", pingOp(bareClient), GRPC_SEQ, GRPC_CONC_TOTAL, GRPC_INFLIGHT, 500),
    );
    // One process hosts both servers and the client, so GC and JIT pauses land on whichever runs
    // at that moment: alternate short concurrent rounds and take medians, ratio per round.
    const roundRatios: number[] = [];
    const channelRates: number[] = [];
    const bareRates: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const first = round % 2 === 0;
      const a = await concurrentRate(pingOp(first ? channel : bareClient), ROUND_CALLS, GRPC_INFLIGHT);
      const b = await concurrentRate(pingOp(first ? bareClient : channel), ROUND_CALLS, GRPC_INFLIGHT);
      const [ch, br] = first ? [a, b] : [b, a];
      channelRates.push(ch);
      bareRates.push(br);
      roundRatios.push(ch / br);
    }
    const med = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] ?? 0;
    (results[0] as Result).concRate = med(channelRates);
    (results[1] as Result).concRate = med(bareRates);

    const ssh = await startSshd(sshDir);
    sshd = ssh.proc;
    results.push(
      await measure("ssh bash -s (NetServa)", sshOp(ssh.port, ssh.key), SSH_SEQ, SSH_CONC_TOTAL, SSH_INFLIGHT, 3),
    );

    const header = [
      "transport",
      "seq calls",
      "p50 ms",
      "p99 ms",
      "seq calls/s",
      "conc calls",
      "in flight",
      "conc calls/s",
    ];
    const rows = results.map((r) => [
      r.name,
      String(r.seqN),
      ms(r.p50),
      ms(r.p99),
      rate(r.seqRate),
      String(r.concN),
      String(r.inflight),
      rate(r.concRate),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
    const line = (cells: string[]): string =>
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
    console.log(line(header));
    console.log(widths.map((w) => "-".repeat(w)).join("  "));
    for (const row of rows) console.log(line(row));
    const [ch, br, sh] = results as [Result, Result, Result];
    const latencyRatio = sh.p50 / ch.p50;
    const concRatio = med(roundRatios);
    void ch;
    void br;
    console.log("");
    console.log(
      `ssh p50 / channel p50           = ${latencyRatio.toFixed(1)}x  (target >= 100x: ${latencyRatio >= 100 ? "met" : "NOT met"})`,
    );
    console.log(
      `channel conc / bare conc        = ${concRatio.toFixed(2)}   (target >= 0.8: ${concRatio >= 0.8 ? "met" : "NOT met"})`,
    );
    console.log(
      `(concurrent figures: median of ${ROUNDS} alternating rounds of ${ROUND_CALLS} calls; ratio = median of per-round ratios ${roundRatios.map((r) => r.toFixed(2)).join(" ")})`,
    );
    console.log(
      `(gRPC: ${GRPC_SEQ} sequential, ${GRPC_CONC_TOTAL} with ${GRPC_INFLIGHT} in flight first; ssh: ${SSH_SEQ} sequential, ${SSH_CONC_TOTAL} with ${SSH_INFLIGHT} in flight; all loopback)`,
    );
  } finally {
    for (const c of clients) c.close();
    if (bare) bare.forceShutdown();
    if (sshd?.pid !== undefined && sshd.exitCode === null) {
      const proc = sshd;
      const exited = new Promise<void>((r) => proc.once("exit", () => r()));
      proc.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
    rmSync(sshDir, { recursive: true, force: true });
    await harness?.close();
  }
}

await main();
process.exit(0);
