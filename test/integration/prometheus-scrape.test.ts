// A real Prometheus (Debian's binary) scrapes two mail vnodes' agents over HTTPS with a
// monitor-role client certificate; its HTTP API must show up == 1 and the mail metrics of both.
// The scrape passes `promtool check metrics`, and every metric the Grafana dashboard queries is
// in it. The monitor certificate cannot command an agent.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { PingRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { createAgentClient } from "../../controller/fleet/agent-client.ts";
import { freePort } from "../helpers/controller-harness.ts";
import { startMailFleet, until, AGENT_PORT, type MailFleet } from "../helpers/mail-fleet.ts";

const isRoot = process.getuid?.() === 0;
const MONITORING = join(import.meta.dirname, "..", "..", "agent", "metrics", "monitoring");
let fleet: MailFleet;
let dir = "";
let prometheus: ChildProcess | undefined;
let promPort = 0;
const monitor = { ca: "", cert: "", key: "" };

function scrape(address: string, vnode: string): Promise<{ status: number; body: string }> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host, port: Number(port), path: "/metrics", ...monitor, servername: vnode, timeout: 10_000 },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

async function promQuery(query: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const body = await new Promise<string>((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port: promPort, path: `/api/v1/query?query=${encodeURIComponent(query)}` },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => resolve(text));
      },
    );
    req.on("error", reject);
    req.end();
  });
  const parsed = JSON.parse(body) as {
    status: string;
    data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  };
  if (parsed.status !== "success") throw new Error(body);
  return parsed.data.result;
}

describe.skipIf(!isRoot)("Prometheus scrapes two agents", () => {
  beforeAll(async () => {
    fleet = await startMailFleet(["pv1", "pv2"], "prom");
    dir = mkdtempSync(join(tmpdir(), "nsm-prometheus-"));
    const issued = await fleet.harness.cli(["cert", "issue-monitor", "prometheus", "--out", join(dir, "tls")]);
    expect(issued.code, issued.err).toBe(0);
    monitor.ca = readFileSync(join(dir, "tls", "ca.crt"), "utf8");
    monitor.cert = readFileSync(join(dir, "tls", "prometheus.crt"), "utf8");
    monitor.key = readFileSync(join(dir, "tls", "prometheus.key"), "utf8");
    // One job per vnode: the agent's certificate names the vnode, not its IP, so each job sets
    // tls_config.server_name (with DNS names as targets one job would do).
    const jobs = fleet.vnodes.map((v) =>
      [
        `  - job_name: netserva-agent-${v.name}`,
        "    scheme: https",
        "    tls_config:",
        `      ca_file: ${join(dir, "tls", "ca.crt")}`,
        `      cert_file: ${join(dir, "tls", "prometheus.crt")}`,
        `      key_file: ${join(dir, "tls", "prometheus.key")}`,
        `      server_name: ${v.name}`,
        "    static_configs:",
        `      - targets: ["${v.metricsAddress}"]`,
      ].join("\n"),
    );
    writeFileSync(
      join(dir, "prometheus.yml"),
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - ${join(MONITORING, "alert-rules.yml")}\nscrape_configs:\n${jobs.join("\n")}\n`,
    );
    promPort = await freePort();
    prometheus = spawn(
      "/usr/bin/prometheus",
      [
        `--config.file=${join(dir, "prometheus.yml")}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let log = "";
    prometheus.stderr?.on("data", (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
    await until(
      async () => ((await promQuery("vector(1)")).length === 1 ? true : undefined),
      30_000,
      `prometheus to answer (${log})`,
    );
  }, 240_000);

  afterAll(async () => {
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((r) => prometheus?.once("exit", r));
      process.kill(prometheus.pid ?? 0, "SIGTERM");
      await exited;
    }
    await fleet?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("serves mail metrics to the monitor certificate, passing promtool check metrics", async () => {
    for (const v of fleet.vnodes) {
      const { status, body } = await scrape(v.metricsAddress, v.name);
      expect(status).toBe(200);
      expect(body).toMatch(
        new RegExp(`^netserva_postfix_queue_messages\\{queue="deferred",vnode="${v.name}"\\} 0$`, "m"),
      );
      expect(body).toMatch(new RegExp(`^netserva_mail_service_up\\{service="postfix",vnode="${v.name}"\\} 1$`, "m"));
      expect(body).toMatch(/^netserva_mail_fs_size_bytes\{vnode="[^"]+"\} \d+/m);
      expect(body).toMatch(/^netserva_mail_tls_certificate_expiry_timestamp_seconds\{vnode="[^"]+"\} \d+/m);
      expect(body).toMatch(/^netserva_agent_drift\{vnode="[^"]+"\} 0$/m);
      const checked = await new Promise<{ code: number; output: string }>((resolve) => {
        const child = execFile("/usr/bin/promtool", ["check", "metrics"], (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
        );
        child.stdin?.end(body);
      });
      expect(checked.output).toBe("");
      expect(checked.code).toBe(0);
    }
  });

  it("refuses the monitor certificate on the command channel", async () => {
    const v = fleet.vnodes[0];
    if (!v) throw new Error("no vnode");
    const client = createAgentClient({
      vnode: v.name,
      address: `${v.ns.nsAddress}:${AGENT_PORT}`,
      caPem: monitor.ca,
      certPem: monitor.cert,
      keyPem: monitor.key,
    });
    try {
      await expect(
        client.call("ping", create(PingRequestSchema, { meta: create(CommandMetaSchema, { requestId: "monitor-1" }) })),
      ).rejects.toThrow(/monitor/);
    } finally {
      client.close();
    }
  });

  it("finds up == 1 and the mail metrics of both vnodes through the Prometheus API", async () => {
    const names = fleet.vnodes.map((v) => v.name).sort();
    const up = await until(
      async () => {
        const r = await promQuery('up{job=~"netserva.*"} == 1');
        return r.length === 2 ? r : undefined;
      },
      30_000,
      "up == 1 for both agents",
    );
    expect(up.map((s) => s.metric["job"]).sort()).toEqual(names.map((n) => `netserva-agent-${n}`));
    for (const metric of [
      "netserva_postfix_queue_messages",
      "netserva_mail_service_up",
      "netserva_mail_fs_used_bytes",
      "netserva_mail_tls_certificate_expiry_timestamp_seconds",
      "netserva_agent_drift",
    ]) {
      const r = await until(
        async () => {
          const got = await promQuery(`count by (vnode) (${metric})`);
          return got.length === 2 ? got : undefined;
        },
        15_000,
        `${metric} for both vnodes`,
      );
      expect(r.map((s) => s.metric["vnode"]).sort()).toEqual(names);
    }
    const rules = await promQuery('ALERTS{alertname="NetservaVnodeDown"}');
    expect(rules).toEqual([]);
  }, 60_000);

  it("the Grafana dashboard queries only metrics that a real scrape has", async () => {
    const dashboard = JSON.parse(readFileSync(join(MONITORING, "grafana-dashboard.json"), "utf8")) as {
      templating: { list: Array<{ name: string; type: string; query: unknown }> };
      panels: Array<{ title: string; datasource: { uid: string }; targets: Array<{ expr: string }> }>;
    };
    expect(dashboard.templating.list.find((t) => t.type === "datasource")?.name).toBe("datasource");
    const v = fleet.vnodes[0];
    if (!v) throw new Error("no vnode");
    const { body } = await scrape(v.metricsAddress, v.name);
    const scraped = new Set(
      body
        .split("\n")
        .filter((l) => l && !l.startsWith("#"))
        .map((l) => l.split(/[{ ]/)[0]),
    );
    const used = new Set<string>();
    for (const panel of dashboard.panels) {
      expect(panel.datasource.uid).toBe("${datasource}");
      expect(panel.targets.length).toBeGreaterThan(0);
      for (const t of panel.targets) for (const m of t.expr.match(/\bnetserva_[a-z0-9_]+/g) ?? []) used.add(m);
    }
    expect(used.size).toBeGreaterThan(15);
    const missing = [...used].filter((m) => !scraped.has(m) && !scraped.has(`${m}_total`));
    // Rspamd and ClamAV series exist only on vnodes that run them; the names are still checked
    // against the registry's HELP lines.
    const declared = new Set(
      body
        .split("\n")
        .filter((l) => l.startsWith("# HELP "))
        .map((l) => l.split(" ")[2]),
    );
    expect(missing.filter((m) => !declared.has(m))).toEqual([]);
  });
});
