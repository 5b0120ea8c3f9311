// What the production-mode tests share: the packages scripts/package builds, a controller on the
// host (in this process) the container can reach, and the steps of turning a booted system into
// an enrolled vnode with real mail.
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer, connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { BootedSystem } from "./booted-system.ts";
import type { Harness } from "./controller-harness.ts";
import { hamMessage } from "./filter-messages.ts";
import { waitDelivered } from "./mail-maildir.ts";
import { sendMail, type SendOutcome } from "./mail-smtp.ts";

const exec = promisify(execFile);
const repo = resolve(import.meta.dirname, "../..");

export interface Packages {
  readonly controller: string;
  readonly agent: string;
  remove(): void;
}

/** Build both .deb files with scripts/package into a scratch directory. */
export async function buildPackages(): Promise<Packages> {
  const out = mkdtempSync(join(tmpdir(), "nsm-packages-"));
  const { stdout } = await exec(join(repo, "scripts/package"), ["--out", out], { timeout: 600_000 });
  const debs = stdout.trim().split("\n");
  const find = (name: string): string => {
    const deb = debs.find((d) => d.includes(`/${name}_`));
    if (!deb) throw new Error(`scripts/package did not build ${name}: ${stdout}`);
    return deb;
  };
  return {
    controller: find("netserva-mail"),
    agent: find("netserva-mail-agent"),
    remove: () => rmSync(out, { recursive: true, force: true }),
  };
}

/** Copy a .deb into the container's /root and return its path inside. */
export function copyIn(sys: BootedSystem, deb: string): string {
  const name = deb.slice(deb.lastIndexOf("/") + 1);
  copyFileSync(deb, join(sys.root, "root", name));
  return `/root/${name}`;
}

/**
 * The harness's controller listens on loopback; the container reaches it (for enrollment only:
 * afterwards the controller dials the agent) through this forwarder on the veth's host address.
 */
export async function forwardToController(
  listenHost: string,
  controllerAddress: string,
): Promise<{ address: string; close(): Promise<void> }> {
  const [host, port] = controllerAddress.split(":") as [string, string];
  const open = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(port), host);
    for (const s of [client, upstream]) {
      open.add(s);
      s.on("close", () => open.delete(s));
    }
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, listenHost, r));
  const address = server.address();
  const boundPort = typeof address === "object" && address ? address.port : 0;
  return {
    address: `${listenHost}:${boundPort}`,
    // server.close() waits for open connections: a test that failed midway leaves some.
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        for (const s of open) s.destroy();
      }),
  };
}

/**
 * A fresh Debian install has Debian's stock main.cf, which the agent did not write: it starts
 * unmanaged (hands off). Wait until it reports so (nothing pushed meanwhile), then switch it as
 * an operator would, with `vnode manage --yes`.
 */
export async function manageStockVnode(h: Harness, vnode: string, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  let last = "";
  for (;;) {
    const r = await h.cli(["status", "--json"]);
    last = r.out;
    const row = (JSON.parse(r.out || "[]") as Array<Record<string, unknown>>).find((v) => v["vnode"] === vnode);
    if (row?.["connected"] === true && row["management"] === "unmanaged") {
      if (row["appliedGeneration"] !== 0) throw new Error(`unmanaged vnode ${vnode} got a push: ${last}`);
      break;
    }
    if (Date.now() > deadline) throw new Error(`vnode ${vnode} did not report unmanaged within ${ms} ms: ${last}`);
    await new Promise((r2) => setTimeout(r2, 250));
  }
  const managed = await h.cli(["vnode", "manage", vnode, "--yes"]);
  if (managed.code !== 0) throw new Error(`vnode manage exited ${managed.code}: ${managed.err}`);
}

/** Poll the controller until the vnode is connected and at its generation. */
export async function waitApplied(
  h: Harness,
  vnode: string,
  ms = 120_000,
  diagnose: () => Promise<string> = async () => "",
): Promise<void> {
  const deadline = Date.now() + ms;
  let last = "";
  while (Date.now() < deadline) {
    const r = await h.cli(["status", "--json"]);
    last = r.out;
    const rows = JSON.parse(r.out || "[]") as Array<Record<string, unknown>>;
    const row = rows.find((v) => v["vnode"] === vnode);
    if (row && row["connected"] === true && row["appliedGeneration"] === row["generation"]) return;
    await new Promise((r2) => setTimeout(r2, 250));
  }
  throw new Error(`vnode ${vnode} did not reach its generation within ${ms} ms: ${last}\n${await diagnose()}`);
}

export interface MailTarget {
  readonly sys: BootedSystem;
  readonly ca: string;
  readonly hostname: string;
}

/** A real-looking message in on port 25 (STARTTLS, verified against the controller's CA). */
export async function sendInbound(t: MailTarget, to: string, data: string): Promise<SendOutcome> {
  return sendMail({
    host: t.sys.ns.nsAddress,
    port: 25,
    ca: t.ca,
    servername: t.hostname,
    startTls: true,
    from: "carol@remote.test",
    to: [to],
    data,
  });
}

/**
 * Like sendInbound, but a temporary refusal (4xx) is tried again, as a real sender would, until
 * the answer is final: a freshly started Rspamd defers mail while it is still loading.
 */
export async function sendInboundFinal(t: MailTarget, to: string, data: string, ms = 90_000): Promise<SendOutcome> {
  const deadline = Date.now() + ms;
  for (;;) {
    const sent = await sendInbound(t, to, data);
    if (sent.reply.code < 400 || sent.reply.code >= 500 || Date.now() > deadline) return sent;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** Send a message to `local@domain` and wait for it in that mailbox's Maildir inside the container. */
export async function deliverAndFind(t: MailTarget, local: string, domain: string, subject: string): Promise<string> {
  const data = hamMessage({ from: "carol@remote.test", to: `${local}@${domain}`, subject });
  const sent = await sendInbound(t, `${local}@${domain}`, data);
  if (sent.stage !== "done") throw new Error(`SMTP refused at ${sent.stage}: ${sent.reply.text}`);
  const id = /^Message-ID: (<[^>]+>)/m.exec(data)?.[1] ?? "";
  return waitDelivered(join(t.sys.root, "srv", domain, "msg", local, "Maildir"), id, "", 30_000);
}

export const readCa = (h: Harness): string => readFileSync(join(h.home, "ca", "ca.crt"), "utf8");

export interface ServiceView {
  readonly name: string;
  readonly state: string;
  readonly detail: string | null;
  /** Deaths followed by a restart since the agent started (systemd's Restart= or the agent's). */
  readonly restarts: number;
  readonly lastRestartAt: string | null;
  readonly lastRestartReason: string | null;
}

/**
 * Poll `mail:status --json` until every daemon in `daemons` shows `count` restarts: a death the
 * service manager hid within seconds is still visible in health, with its reason, and named in
 * the problems. Returns the services and the problems as last seen.
 */
export async function waitRestartsShown(
  h: Harness,
  vnode: string,
  daemons: readonly string[],
  count: number,
  ms = 60_000,
): Promise<{ services: ServiceView[]; problems: string[] }> {
  const deadline = Date.now() + ms;
  let last: { services: ServiceView[]; problems: string[] } = { services: [], problems: [] };
  while (Date.now() < deadline) {
    const r = await h.cli(["mail:status", vnode, "--json"]);
    const parsed = JSON.parse(r.out || "{}") as { services?: ServiceView[]; problems?: string[] };
    last = { services: parsed.services ?? [], problems: parsed.problems ?? [] };
    if (daemons.every((d) => (last.services.find((s) => s.name === d)?.restarts ?? 0) >= count)) return last;
    await new Promise((r2) => setTimeout(r2, 500));
  }
  throw new Error(
    `health of ${vnode} never showed ${count} restart(s) of ${daemons.join(", ")}: ${JSON.stringify(last)}`,
  );
}

/** A monitor-role certificate from the harness's CA (`cert issue-monitor`), to scrape agents' /metrics. */
export async function issueMonitor(h: Harness): Promise<{ ca: string; cert: string; key: string; remove(): void }> {
  const dir = mkdtempSync(join(tmpdir(), "nsm-monitor-"));
  const issued = await h.cli(["cert", "issue-monitor", "prometheus", "--out", dir]);
  if (issued.code !== 0) throw new Error(`cert issue-monitor exited ${issued.code}: ${issued.err}`);
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  return {
    ca: read("ca.crt"),
    cert: read("prometheus.crt"),
    key: read("prometheus.key"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** One scrape of an agent's /metrics with a monitor certificate; the body as text. */
export function scrapeMetrics(
  address: string,
  vnode: string,
  monitor: { ca: string; cert: string; key: string },
): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolveScrape, reject) => {
    const req = httpsRequest(
      {
        host,
        port: Number(port),
        path: "/metrics",
        ca: monitor.ca,
        cert: monitor.cert,
        key: monitor.key,
        servername: vnode,
        timeout: 10_000,
      },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () =>
          res.statusCode === 200 ? resolveScrape(body) : reject(new Error(`/metrics answered ${res.statusCode}`)),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/**
 * The daemons as the vnode's latest health report showed them (`mail:status --json`), polled
 * until `want` holds: health carries the service manager's own words in `detail`.
 */
export async function waitServices(
  h: Harness,
  vnode: string,
  want: (services: readonly ServiceView[]) => boolean,
  ms = 60_000,
): Promise<ServiceView[]> {
  const deadline = Date.now() + ms;
  let services: ServiceView[] = [];
  while (Date.now() < deadline) {
    const r = await h.cli(["mail:status", vnode, "--json"]);
    services = (JSON.parse(r.out || "{}") as { services?: ServiceView[] }).services ?? [];
    if (want(services)) return services;
    await new Promise((r2) => setTimeout(r2, 500));
  }
  throw new Error(`health of ${vnode} never showed the wanted services: ${JSON.stringify(services)}`);
}

/** Postfix's master pid inside the container: the same after a reload, a new one after a restart. */
export function postfixMasterPid(sys: BootedSystem): number {
  try {
    return Number(readFileSync(join(sys.root, "var/spool/postfix/pid/master.pid"), "utf8").trim());
  } catch {
    return 0;
  }
}

/**
 * A hand-made broken Rspamd override on the vnode (a file the agent does not manage), so turning
 * Rspamd on fails the agent's checker: the returned text is the controller's word on the refusal.
 */
export const BROKEN_RSPAMD_OVERRIDE = "/etc/rspamd/override.d/options.inc";
export async function refuseRspamdOverBrokenOverride(sys: BootedSystem, h: Harness, vnode: string): Promise<string> {
  await sys.ok(["sh", "-c", `printf 'this is { not ucl\\n' > ${BROKEN_RSPAMD_OVERRIDE}`]);
  const set = await h.cli(["vnode", "set", vnode, "--rspamd", "1"]);
  if (set.code !== 0) throw new Error(`vnode set exited ${set.code}: ${set.err}`);
  return set.err;
}

/**
 * Reinstall the stock postfix and dovecot-core packages in the container, as an upgrade would:
 * the container has no archive, so the host's apt fetches the container's exact versions and
 * apt-get inside installs them from the files, keeping changed files: dpkg's conffiles with
 * --force-confold, ucf's (dovecot.conf, conf.d/*) with UCF_FORCE_CONFFOLD, as the README advises.
 */
export async function reinstallStockPackages(sys: BootedSystem, names: readonly string[]): Promise<string> {
  const versions = await sys.ok(["dpkg-query", "-W", "-f", "${Package}=${Version}\\n", ...names]);
  const dir = mkdtempSync(join(tmpdir(), "nsm-reinstall-"));
  try {
    await exec("apt-get", ["download", ...versions.trim().split("\n")], { cwd: dir, timeout: 300_000 });
    const inside: string[] = [];
    for (const deb of readdirSync(dir)) {
      copyFileSync(join(dir, deb), join(sys.root, "root", deb));
      inside.push(`/root/${deb}`);
    }
    return await sys.ok(
      [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "UCF_FORCE_CONFFOLD=1",
        "apt-get",
        "install",
        "--reinstall",
        "-y",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
        ...inside,
      ],
      { timeoutMs: 300_000 },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
