// Benchmark: the agent's HTTPS listener (agent/web) answering MTA-STS policy fetches on loopback,
// first alone, then while slowloris clients (TLS done, headers never finished) and silent TCP
// connections hold sockets open: the rate the real clients get should barely move. Run by
// scripts/bench-web; prints one table; starts and stops everything itself.
import { Agent, request } from "node:https";
import { connect as tcpConnect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { connect as tlsConnect } from "node:tls";
import { create } from "@bufbuild/protobuf";
import { DesiredStateSchema } from "../common/gen/netserva/mail/v1/state_pb.ts";
import { certMapOf, createContextChooser } from "../agent/web/cert-map.ts";
import { siteOf } from "../agent/web/served-site.ts";
import { startWebServer } from "../agent/web/web-server.ts";
import { mtaStsPolicy } from "../controller/dns/mta-sts.ts";
import { createTestCa } from "../test/helpers/mail-tls.ts";

const SECONDS = Number(process.env["BENCH_SECONDS"] ?? 5);
const CLIENTS = 32;
const SLOW = 200; // from 200 addresses (127.0.x.y): under the per-address cap, 400 sockets in all
const NAME = "mta-sts.bench.test";

const ca = await createTestCa("bench CA");
const mail = await ca.issue(["mail.bench.test"]);
const sts = await ca.issue([NAME]);
const state = create(DesiredStateSchema, {
  tls: { certificateChainPem: mail.chainPem, privateKeyPem: mail.keyPem },
  certificates: [{ names: [NAME], certificateChainPem: sts.chainPem, privateKeyPem: sts.keyPem, issuer: "acme" }],
  served: [
    { domain: "bench.test", mtaStsPolicy: mtaStsPolicy("mail.bench.test", "testing"), mailHost: "mail.bench.test" },
  ],
});
const map = certMapOf(state);
if (!map.fallback) throw new Error("no fallback");
const server = await startWebServer({
  host: "127.0.0.1",
  port: 0,
  content: { site: siteOf(state), choose: createContextChooser(map), fallback: map.fallback },
});

async function run(label: string): Promise<string> {
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS, ca: ca.caPem, servername: NAME });
  const latencies: number[] = [];
  let failed = 0;
  const end = performance.now() + SECONDS * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = request(
        { host: "127.0.0.1", port: server.port, path: "/.well-known/mta-sts.txt", headers: { host: NAME }, agent },
        (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode === 200) latencies.push(performance.now() - t0);
            else failed++;
            resolve();
          });
        },
      );
      req.on("error", () => {
        failed++;
        resolve();
      });
      req.end();
    });
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < end) await one();
    }),
  );
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const q = (p: number): string => (latencies[Math.floor((latencies.length - 1) * p)] ?? 0).toFixed(2);
  return `${label.padEnd(34)} ${String(Math.round(latencies.length / SECONDS)).padStart(7)} ${q(0.5).padStart(8)} ${q(0.99).padStart(8)} ${String(failed).padStart(6)}`;
}

const rows = [
  `${"case".padEnd(34)} ${"req/s".padStart(7)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"failed".padStart(6)}`,
];
rows.push(await run(`${CLIENTS} keep-alive clients`));
const slow: Socket[] = [];
for (let i = 0; i < SLOW; i++) {
  // From other addresses than the real clients' (127.0.0.1), as an attacker would be.
  const localAddress = `127.0.${1 + Math.floor(i / 20)}.${2 + (i % 20)}`;
  const raw = tcpConnect({ host: "127.0.0.1", port: server.port, localAddress });
  raw.on("error", () => undefined);
  const s = tlsConnect({ socket: raw, servername: NAME, ca: ca.caPem }, () =>
    s.write(`GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: ${NAME}\r\n`),
  );
  s.on("error", () => undefined);
  slow.push(s as unknown as Socket);
  const t = tcpConnect({ host: "127.0.0.1", port: server.port, localAddress });
  t.on("error", () => undefined);
  slow.push(t);
}
rows.push(await run(`same, with ${SLOW} slowloris + ${SLOW} silent`));
const stillOpen = slow.filter((s) => !s.destroyed && !s.closed).length;
for (const s of slow) s.destroy();
await server.close();
ca.dispose();
console.log(rows.join("\n"));
console.log(
  `slow sockets still open after the second run: ${stillOpen} of ${slow.length} (the server's limits close them)`,
);
