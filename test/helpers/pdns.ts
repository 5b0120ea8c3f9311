// A real PowerDNS Authoritative server for tests: gsqlite3 backend (schema from Debian's
// pdns-backend-sqlite3), HTTP API with a random key, DNS and webserver on free loopback ports,
// config and sockets in a temp dir. Started with spawn (no shell), ready when the API answers and
// a DNS query gets a reply, stopped by its PID. Caches are off so every answer is fresh.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Resolver } from "node:dns/promises";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { freePort } from "./controller-harness.ts";

const SCHEMAS = [
  "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql",
  "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql",
];
export const PDNS_BINARY = "/usr/sbin/pdns_server";
export const pdnsAvailable = existsSync(PDNS_BINARY) && SCHEMAS.some((s) => existsSync(s));

export interface Pdns {
  readonly url: string;
  readonly apiKey: string;
  readonly dnsPort: number;
  /** "127.0.0.1:<port>" (the first DNS address), for NETSERVA_DNS_RESOLVER / node:dns setServers. */
  readonly resolver: string;
  readonly pid: number;
  readonly logFile: string;
  createZone(name: string): Promise<void>;
  /** Raw API call, for assertions that look past the provider. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  stop(): Promise<void>;
}

async function until(
  what: string,
  ms: number,
  child: ChildProcess,
  logFile: string,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`pdns_server exited with ${child.exitCode}: ${readFileSync(logFile, "utf8").slice(-2000)}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pdns_server: ${what} not ready within ${ms} ms; see ${logFile}`);
}

export interface PdnsOptions {
  /** Serve DNS on these addresses and this port instead of a free loopback port (e.g. the host
   * side of test namespaces' veths on 53, so a namespace's resolv.conf can name it). */
  dns?: { addresses: readonly string[]; port: number };
}

export async function startPdns(options: PdnsOptions = {}): Promise<Pdns> {
  const dir = mkdtempSync(join(tmpdir(), "nsm-pdns-"));
  const schema = SCHEMAS.find((s) => existsSync(s)) ?? "";
  const dbFile = join(dir, "pdns.sqlite3");
  const db = new DatabaseSync(dbFile);
  db.exec(readFileSync(schema, "utf8"));
  db.close();
  const [dnsPort, httpPort] = [options.dns?.port ?? (await freePort()), await freePort()];
  const dnsAddresses = options.dns?.addresses ?? ["127.0.0.1"];
  const dnsHost = dnsAddresses[0] ?? "127.0.0.1";
  const apiKey = randomBytes(24).toString("hex");
  writeFileSync(
    join(dir, "pdns.conf"),
    [
      "launch=gsqlite3",
      `gsqlite3-database=${dbFile}`,
      `local-address=${dnsAddresses.join(",")}`,
      `local-port=${dnsPort}`,
      "api=yes",
      `api-key=${apiKey}`,
      "webserver=yes",
      "webserver-address=127.0.0.1",
      `webserver-port=${httpPort}`,
      "webserver-allow-from=127.0.0.0/8",
      `socket-dir=${dir}`,
      "guardian=no",
      "daemon=no",
      "disable-syslog=yes",
      "loglevel=4",
      "cache-ttl=0",
      "negquery-cache-ttl=0",
      "query-cache-ttl=0",
      "zone-cache-refresh-interval=0",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const logFile = join(dir, "pdns.log");
  const log = openSync(logFile, "a");
  const child = spawn(PDNS_BINARY, [`--config-dir=${dir}`], { stdio: ["ignore", log, log] });
  const url = `http://127.0.0.1:${httpPort}`;
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> => {
    const response = await fetch(`${url}/api/v1/servers/localhost${path}`, {
      method,
      headers: { "X-API-Key": apiKey, "Content-Type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as unknown) : undefined };
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.pid !== undefined) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(child.pid, "SIGTERM");
      const timer = setTimeout(
        () => child.pid !== undefined && child.exitCode === null && process.kill(child.pid, "SIGKILL"),
        5000,
      );
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until("API", 20_000, child, logFile, async () => (await api("GET", "")).status === 200);
    await until("DNS", 20_000, child, logFile, async () => {
      const r = new Resolver({ timeout: 300, tries: 1 });
      r.setServers([`${dnsHost}:${dnsPort}`]);
      // Any DNS answer (NXDOMAIN / REFUSED included) means the listener is up; a timeout does not.
      return r.resolveTxt("ready.invalid").then(
        () => true,
        (e: { code?: string }) => e.code !== "ETIMEOUT" && e.code !== "ECONNREFUSED",
      );
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    apiKey,
    dnsPort,
    resolver: `${dnsHost}:${dnsPort}`,
    pid: child.pid ?? 0,
    logFile,
    api,
    async createZone(name) {
      const zone = name.endsWith(".") ? name : `${name}.`;
      const created = await api("POST", "/zones", { name: zone, kind: "Native", nameservers: [`ns1.${zone}`] });
      if (created.status !== 201)
        throw new Error(`create zone ${zone}: HTTP ${created.status} ${JSON.stringify(created.body)}`);
    },
    stop,
  };
}
