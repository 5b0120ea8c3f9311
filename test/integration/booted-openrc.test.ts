// Production mode on a booted Debian 12 with OpenRC as init (/sbin/openrc-init as PID 1 under
// systemd-nspawn, in a network namespace of the test): the stock postfix, dovecot, rspamd and
// clamav-daemon packages, the agent package scripts/package builds, the agent enrolled against a
// controller on the host and run by /etc/init.d/netserva-mail-agent under supervise-daemon
// (`serve --mail`, sc() = rc-service / rc-update on the stock services). Real mail in over SMTP
// and out over IMAPS; sc() through the real OpenRC (restart at takeover, reload, enable + start,
// stop, status in health); a broken change refused with mail flowing; postfix and dovecot-core
// reinstalled under it; the agent respawned by supervise-daemon after kill -9; dpkg -i/-r/-P clean.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootSystem, fileListing, type BootedSystem } from "../helpers/booted-system.ts";
import {
  BROKEN_RSPAMD_OVERRIDE,
  buildPackages,
  copyIn,
  deliverAndFind,
  forwardToController,
  issueMonitor,
  postfixMasterPid,
  readCa,
  refuseRspamdOverBrokenOverride,
  reinstallStockPackages,
  scrapeMetrics,
  sendInboundFinal,
  manageStockVnode,
  waitApplied,
  waitRestartsShown,
  waitServices,
  type MailTarget,
  type Packages,
} from "../helpers/booted-vnode.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";
import { gtubeMessage } from "../helpers/filter-messages.ts";

// The long run only (LONG=1 scripts/test): booting a root and installing packages takes minutes.
const canRun =
  process.env["NETSERVA_TEST_LONG"] === "1" &&
  process.getuid?.() === 0 &&
  existsSync("/usr/bin/mmdebstrap") &&
  existsSync("/usr/bin/systemd-nspawn");
const D = "openrc.test";
const HOST = `mail.${D}`;
const PASS = "alice-Secret-pass-1";
const AGENT = "netserva-mail-agent";
const AGENT_LOG = "/var/log/netserva-mail/agent.log";
const METRICS_PORT = 9154;
// OpenRC's words for a running service: its own (openrc-run scripts) or an LSB script's.
const OPENRC_RUNNING = /^openrc: (started|.* is running)/;

let sys: BootedSystem;
let h: Harness;
let pkgs: Packages;
let forward: { address: string; close(): Promise<void> } | undefined;
let agentDeb = "";
let t: MailTarget;
let stockMainCf = "";
const sha = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");
const mainCf = (): string => join(sys.root, "etc/postfix/main.cf");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `rc-service NAME status` of an openrc-run script, as OpenRC words it: started, stopped, crashed. */
async function rcStatus(name: string): Promise<string> {
  const r = await sys.run(["rc-service", name, "status"]);
  return /status:\s*(\S+)/.exec(r.stdout + r.stderr)?.[1] ?? `exit ${r.code}: ${r.stdout}${r.stderr}`;
}

/**
 * Whether a stock service runs, by `rc-service NAME status`'s exit code: Debian's postfix, dovecot
 * and rspamd keep their LSB scripts, which Debian's OpenRC runs as they are ("postfix is running.").
 */
const rcRunning = async (name: string): Promise<boolean> => (await sys.run(["rc-service", name, "status"])).code === 0;

const inDefaultRunlevel = async (name: string): Promise<boolean> =>
  new RegExp(`^\\s*${name}\\s*\\|`, "m").test(await sys.ok(["rc-update", "show", "default"]));

/**
 * The agent's process: the one child of supervise-daemon, whose pid file (OpenRC's default,
 * /run/supervise-NAME.pid) holds the supervisor's pid. (By pid, not name: Node 24 calls its
 * main thread "MainThread".)
 */
async function agentPid(): Promise<number> {
  const r = await sys.run(["sh", "-c", `pgrep -P "$(cat /run/supervise-${AGENT}.pid)"`]);
  return r.code === 0 ? Number(r.stdout.trim().split("\n")[0]) : 0;
}

/** What to look at when the vnode does not come up: OpenRC's view and the agent's own log. */
async function diagnose(): Promise<string> {
  const r = await sys.run(["sh", "-c", `rc-status -a; tail -n 60 ${AGENT_LOG}; tail -n 30 /var/log/rc.log`]);
  return r.stdout + r.stderr;
}

// In order (opted out of the suite's shuffle): one installed system's life, install → enroll →
// change → reinstall → restart → remove; each step needs the one before.
describe.skipIf(!canRun)(
  "booted Debian 12 with OpenRC: package, supervise-daemon, enrolled agent, real mail",
  { shuffle: false },
  () => {
    beforeAll(async () => {
      [sys, h, pkgs] = await Promise.all([
        bootSystem("openrc", "bootrc"),
        startHarness({ healthIntervalMs: 1000 }),
        buildPackages(),
      ]);
      agentDeb = copyIn(sys, pkgs.agent);
      stockMainCf = sha(mainCf());
      t = { sys, ca: readCa(h), hostname: HOST };
    }, 1_800_000);

    afterAll(async () => {
      await forward?.close();
      await sys?.stop();
      await h?.close();
      pkgs?.remove();
    });

    it("installs and purges the agent package leaving the file system as it was", async () => {
      const before = await fileListing(sys);
      await sys.ok(["dpkg", "-i", agentDeb]);
      // OpenRC reads the script: its dependencies resolve against the stock services.
      expect(await sys.ok(["rc-service", AGENT, "describe"])).toMatch(/Renders and applies Postfix/);
      expect(await rcStatus(AGENT)).toBe("stopped");
      await sys.ok(["dpkg", "-r", AGENT]);
      await sys.ok(["dpkg", "-P", AGENT]);
      expect(await fileListing(sys)).toEqual(before);
      expect(sha(mainCf())).toBe(stockMainCf);
    }, 300_000);

    it("enrolls, runs under supervise-daemon and serves mail through the stock services", async () => {
      // The stock services as Debian enables them under OpenRC.
      for (const name of ["postfix", "dovecot"]) expect(await rcRunning(name)).toBe(true);
      const stockMaster = postfixMasterPid(sys);
      expect(stockMaster).toBeGreaterThan(0);

      await sys.ok(["dpkg", "-i", agentDeb]);
      forward = await forwardToController(sys.ns.hostAddress, h.controllerAddress);
      const added = await h.cli(["vnode", "add", "vn1", "--address", `${sys.ns.nsAddress}:7444`]);
      expect(added.code, added.err).toBe(0);
      const token = added.out.trim().split("\n").pop() ?? "";
      await sys.ok([
        "netserva-mail-agent",
        "enroll",
        "--controller",
        forward.address,
        "--token",
        token,
        "--home",
        `/var/lib/${AGENT}`,
      ]);
      await sys.ok([
        "sh",
        "-c",
        `printf 'NETSERVA_AGENT_ARGS="--listen=${sys.ns.nsAddress}:7444 --mail-listen=${sys.ns.nsAddress} --metrics-listen=${sys.ns.nsAddress}:${METRICS_PORT} --filter-offline --clamav-test-signatures --no-auth-penalty"\\n' > /etc/netserva-mail/agent.env`,
      ]);
      await sys.ok(["rc-update", "add", AGENT, "default"]);
      await sys.ok(["rc-service", AGENT, "start"]);
      expect(await rcStatus(AGENT), await diagnose()).toBe("started");
      expect(await agentPid(), await diagnose()).toBeGreaterThan(0);

      expect(
        (await h.cli(["vnode", "set", "vn1", "--mail-hostname", HOST, "--mail-listen", sys.ns.nsAddress])).code,
      ).toBe(0);
      await manageStockVnode(h, "vn1");
      await waitApplied(h, "vn1", 180_000, diagnose);
      expect((await h.cli(["addvmaildomain", "vn1", D, "--skip-dns-check"])).code).toBe(0);
      expect((await h.cli(["addvmail", "vn1", `alice@${D}`, "--password-stdin"], `${PASS}\n`)).code).toBe(0);
      await waitApplied(h, "vn1", 120_000, diagnose);
      // The agent took over the stock files, kept aside once at install.
      expect(sha(mainCf())).not.toBe(stockMainCf);
      expect(await sys.ok(["tar", "-tf", `/var/lib/${AGENT}/stock/files.tar`])).toMatch(/^etc\/postfix\/main\.cf$/m);
      // Taking over a running stock Postfix changes its listeners: rc-service postfix restart.
      expect(postfixMasterPid(sys)).not.toBe(stockMaster);
      for (const name of ["postfix", "dovecot"]) expect(await rcRunning(name)).toBe(true);
      // Health carries OpenRC's own view of each daemon (here the LSB scripts' words).
      // A report taken during the apply's own reload says `reloading`: wait for the settled one.
      const services = await waitServices(h, "vn1", (s) =>
        ["postfix", "dovecot"].every((n) => {
          const x = s.find((y) => y.name === n);
          return x?.state === "active" && OPENRC_RUNNING.test(x.detail ?? "");
        }),
      );
      expect(services.map((s) => s.state)).toEqual(services.map(() => "active"));

      await deliverAndFind(t, "alice", D, "first over SMTP");
      const imap = new ImapFlow({
        host: sys.ns.nsAddress,
        port: 993,
        secure: true,
        auth: { user: `alice@${D}`, pass: PASS },
        tls: { ca: t.ca, servername: HOST },
        logger: false,
      });
      await imap.connect();
      const box = await imap.mailboxOpen("INBOX");
      expect(box.exists).toBeGreaterThanOrEqual(1);
      await imap.logout();
    }, 900_000);

    it("refuses a change its checker rejects (a broken hand-made Rspamd override), mail flowing", async () => {
      const managed = sha(mainCf());
      const err = await refuseRspamdOverBrokenOverride(sys, h, "vn1");
      expect(err).toMatch(/refused generation \d+: .*rspamd/i);
      expect(sha(mainCf())).toBe(managed);
      await deliverAndFind(t, "alice", D, "while the change is refused");
    }, 300_000);

    it("applies a config change through OpenRC: Rspamd enabled and started, Postfix reloaded, GTUBE refused", async () => {
      await sys.ok(["rm", "-f", BROKEN_RSPAMD_OVERRIDE]);
      // Not running and not in the runlevel: the agent must start it and enable it (rc-update).
      await sys.ok(["rc-service", "rspamd", "stop"]);
      await sys.run(["rc-update", "del", "rspamd", "default"]);
      expect(await inDefaultRunlevel("rspamd")).toBe(false);
      const master = postfixMasterPid(sys);
      // Set again: a newer generation, pushed now (rather than at the refused one's retry time).
      expect((await h.cli(["vnode", "set", "vn1", "--rspamd", "1"])).code).toBe(0);
      await waitApplied(h, "vn1", 180_000, diagnose);
      expect(await rcRunning("rspamd")).toBe(true);
      expect(await inDefaultRunlevel("rspamd")).toBe(true);
      // Postfix picked up the milter through rc-service postfix reload: the same master.
      expect(postfixMasterPid(sys)).toBe(master);
      await waitServices(h, "vn1", (s) => OPENRC_RUNNING.test(s.find((x) => x.name === "rspamd")?.detail ?? ""));
      const spam = await sendInboundFinal(
        t,
        `alice@${D}`,
        gtubeMessage({ from: "carol@remote.test", to: `alice@${D}` }),
      );
      expect(spam.reply.code).toBe(554);
      await deliverAndFind(t, "alice", D, "after the reload");

      // Off again: the agent stops it through rc-service.
      expect((await h.cli(["vnode", "set", "vn1", "--rspamd", "0"])).code).toBe(0);
      await waitApplied(h, "vn1", 180_000, diagnose);
      expect(await rcRunning("rspamd")).toBe(false);
      await deliverAndFind(t, "alice", D, "with rspamd off");
    }, 600_000);

    it("keeps mail flowing when postfix and dovecot-core are reinstalled under it (conffiles kept)", async () => {
      const managed = sha(mainCf());
      await reinstallStockPackages(sys, ["postfix", "dovecot-core"]);
      // Whatever the maintainer scripts touched is drift: the reconciler writes the desired files
      // back; then the daemons run on them again.
      await waitApplied(h, "vn1", 180_000, diagnose);
      const deadline = Date.now() + 120_000;
      while (sha(mainCf()) !== managed && Date.now() < deadline) await sleep(500);
      expect(sha(mainCf())).toBe(managed);
      for (const name of ["postfix", "dovecot"]) expect(await rcRunning(name)).toBe(true);
      await deliverAndFind(t, "alice", D, "after the reinstall");
    }, 600_000);

    it("is respawned by supervise-daemon after kill -9", async () => {
      const before = await agentPid();
      expect(before).toBeGreaterThan(0);
      await sys.ok(["kill", "-9", String(before)]);
      const deadline = Date.now() + 60_000;
      let after = 0;
      while (Date.now() < deadline) {
        after = await agentPid();
        if (after > 0 && after !== before && (await rcStatus(AGENT)) === "started") break;
        await sleep(250);
      }
      expect(after, await diagnose()).not.toBe(before);
      expect(after).toBeGreaterThan(0);
      await waitApplied(h, "vn1", 120_000, diagnose);
      await deliverAndFind(t, "alice", D, "after the respawn");
      // supervise-daemon wrote the agent's output to its log file.
      expect(readFileSync(join(sys.root, AGENT_LOG.slice(1)), "utf8")).toMatch(/agent serving/);
    }, 300_000);

    it("brings a kill -9'd Postfix master and Dovecot back through the agent's supervisor (OpenRC restarts neither)", async () => {
      const dovecotPid = async (): Promise<number> => {
        const r = await sys.run(["cat", "/run/dovecot/master.pid"]);
        return r.code === 0 ? Number(r.stdout.trim()) : 0;
      };
      const master = postfixMasterPid(sys);
      const dovecot = await dovecotPid();
      expect(master).toBeGreaterThan(0);
      expect(dovecot).toBeGreaterThan(0);
      const logBefore = readFileSync(join(sys.root, AGENT_LOG.slice(1)), "utf8").length;
      await sys.ok(["kill", "-9", String(master), String(dovecot)]);
      const deadline = Date.now() + 120_000;
      const log = (): string => readFileSync(join(sys.root, AGENT_LOG.slice(1)), "utf8").slice(logBefore);
      const lines = (msg: string, daemon: string) =>
        log()
          .split("\n")
          .filter((l) => l.includes(`"msg":"${msg}"`) && l.includes(`"daemon":"${daemon}"`));
      // Back: new masters, OpenRC says running, and the agent logged both restarts (it logs one
      // after rc-service start returns, which may be after the daemon is up).
      const back = async (): Promise<boolean> => {
        const [p, d] = [postfixMasterPid(sys), await dovecotPid()];
        return (
          p > 0 &&
          p !== master &&
          d > 0 &&
          d !== dovecot &&
          (await rcRunning("postfix")) &&
          (await rcRunning("dovecot")) &&
          ["postfix", "dovecot"].every((n) => lines("daemon restarted", n).length > 0)
        );
      };
      while (!(await back()) && Date.now() < deadline) await sleep(250);
      expect(await back(), await diagnose()).toBe(true);
      // The agent saw each death (with its reason, also shown failed in health) and started it again.
      for (const daemon of ["postfix", "dovecot"]) {
        expect(lines("daemon died", daemon), log()).toHaveLength(1);
        expect(lines("daemon restarted", daemon), log()).toHaveLength(1);
      }
      // Health keeps the deaths visible once they are over: the count with the reason, a problem
      // in mail:status, the metric.
      const shown = await waitRestartsShown(h, "vn1", ["postfix", "dovecot"], 1);
      for (const name of ["postfix", "dovecot"]) {
        const s = shown.services.find((x) => x.name === name);
        expect(s?.restarts, name).toBe(1);
        // OpenRC's status names no pid: its own words for the dead daemon are the reason.
        expect(s?.lastRestartReason, name).toMatch(new RegExp(`^openrc: ${name} is not running`));
        expect(shown.problems.join("\n")).toContain(`${name} died and was restarted (1x since the agent started`);
      }
      const monitor = await issueMonitor(h);
      try {
        const body = await scrapeMetrics(`${sys.ns.nsAddress}:${METRICS_PORT}`, "vn1", monitor);
        for (const name of ["postfix", "dovecot"])
          expect(body).toMatch(new RegExp(`^netserva_agent_daemon_restarts_total\\{daemon="${name}"[^}]*\\} 1$`, "m"));
      } finally {
        monitor.remove();
      }
      // Health shows them running again; SMTP greets and delivers through Dovecot's LMTP.
      await waitServices(h, "vn1", (sv) =>
        ["postfix", "dovecot"].every((n) => {
          const x = sv.find((y) => y.name === n);
          return x?.state === "active" && OPENRC_RUNNING.test(x.detail ?? "");
        }),
      );
      await deliverAndFind(t, "alice", D, "after the daemons were killed");
    }, 300_000);

    it("removing the agent package stops it and puts the stock files back; purge takes the rest", async () => {
      await sys.ok(["dpkg", "-r", AGENT]);
      expect(await rcStatus(AGENT)).not.toBe("started");
      expect(await inDefaultRunlevel(AGENT)).toBe(false);
      expect(sha(mainCf())).toBe(stockMainCf);
      expect(existsSync(join(sys.root, "etc/postfix/sqlite-virtual-domains.cf"))).toBe(false);
      // The stock Postfix runs again on its own files.
      expect(await rcRunning("postfix")).toBe(true);
      await sys.ok(["dpkg", "-P", AGENT]);
      expect(existsSync(join(sys.root, `var/lib/${AGENT}`))).toBe(false);
      expect(existsSync(join(sys.root, "etc/init.d", AGENT))).toBe(false);
      // Mail is never removed.
      expect(existsSync(join(sys.root, "srv", D, "msg", "alice", "Maildir"))).toBe(true);
    }, 300_000);
  },
);
