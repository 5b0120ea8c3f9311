// Production mode on a booted Debian 12 with systemd as PID 1 (systemd-nspawn --boot, in a network
// namespace of the test): the stock postfix, dovecot, rspamd and clamav-daemon packages, the
// packages scripts/package builds, the agent enrolled against a controller on the host and run by
// netserva-mail-agent.service (`serve --mail`, sc() = systemctl on the stock units). Real mail in
// over SMTP and out over IMAPS; sc() through the real systemd (restart at takeover, reload, enable +
// start, stop, status in health); a broken change refused with mail flowing; postfix and
// dovecot-core reinstalled under it; the agent restarted by systemd after kill -9; no
// EROFS/EACCES under the shipped sandbox; and dpkg -i/-r/-P clean for both packages (stock files
// back on removal, the controller's CA and database never deleted by a purge).
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
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
import { eicarMessage, gtubeMessage } from "../helpers/filter-messages.ts";
import { readManifest } from "../../agent/mail/manifest.ts";
import { recordChaos } from "../chaos/report.ts";

// The long run only (LONG=1 scripts/test): booting a root and installing packages takes minutes.
const canRun =
  process.env["NETSERVA_TEST_LONG"] === "1" &&
  process.getuid?.() === 0 &&
  existsSync("/usr/bin/mmdebstrap") &&
  existsSync("/usr/bin/systemd-nspawn");
const D = "boot.test";
const HOST = `mail.${D}`;
const PASS = "alice-Secret-pass-1";
const AGENT_UNIT = "netserva-mail-agent.service";
const METRICS_PORT = 9154;
const KILLED = "main process killed by signal 9 (SIGKILL)";

let sys: BootedSystem;
let h: Harness;
let pkgs: Packages;
let forward: { address: string; close(): Promise<void> } | undefined;
let agentDeb = "";
let controllerDeb = "";
let t: MailTarget;
let stockMainCf = "";
const sha = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");
const mainCf = (): string => join(sys.root, "etc/postfix/main.cf");

const unitState = async (unit: string, verb: "is-active" | "is-enabled"): Promise<string> =>
  (await sys.run(["systemctl", verb, unit])).stdout.trim();

async function mainPid(): Promise<number> {
  return Number((await sys.ok(["systemctl", "show", "-p", "MainPID", "--value", AGENT_UNIT])).trim());
}

const unitPid = async (unit: string): Promise<number> =>
  Number((await sys.ok(["systemctl", "show", "-p", "MainPID", "--value", unit])).trim());
const unitRestarts = async (unit: string): Promise<number> =>
  Number((await sys.ok(["systemctl", "show", "-p", "NRestarts", "--value", unit])).trim());

/** The agent's netserva_agent_daemon_restarts_total per daemon, scraped with a monitor certificate. */
async function restartMetric(): Promise<Map<string, number>> {
  const monitor = await issueMonitor(h);
  try {
    const body = await scrapeMetrics(`${sys.ns.nsAddress}:${METRICS_PORT}`, "vn1", monitor);
    return new Map(
      [...body.matchAll(/^netserva_agent_daemon_restarts_total\{daemon="(\w+)"[^}]*\} (\d+)$/gm)].map(
        (m) => [m[1] ?? "", Number(m[2])] as const,
      ),
    );
  } finally {
    monitor.remove();
  }
}

// The agent's state under `--mail` (the system root), as the container's paths.
const STATE = "/var/lib/netserva-mail";
const manifestPaths = (): string[] => Object.keys(readManifest(join(sys.root, STATE, "manifest.json")).files).sort();
// Where the managed files live, walked whole: a file the new config adds is seen (or seen missing)
// in a snapshot taken before anyone knew the new manifest.
const CONFIG_TREES = ["/etc/postfix", "/etc/dovecot", "/etc/rspamd", "/etc/netserva-mail", "/etc/clamav"];

/** sha256 of every regular file under the config trees and the managed files' directories. */
function configTree(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(join(sys.root, dir));
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      const st = lstatSync(join(sys.root, path));
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) out.set(path, sha(join(sys.root, path)));
    }
  };
  for (const dir of new Set([...CONFIG_TREES, ...manifestPaths().map((p) => dirname(p))])) walk(dir);
  return out;
}

/** The managed files' digests (`paths`: the union of every manifest seen) in one tree snapshot. */
const digestOf = (tree: Map<string, string>, paths: readonly string[]): string =>
  createHash("sha256")
    .update(JSON.stringify(paths.map((p) => [p, tree.get(p) ?? "missing"])))
    .digest("hex");

/** What an interrupted apply may leave and start-up recovery must remove. */
function mailLeftovers(): string[] {
  const aside = [...new Set(manifestPaths().map((p) => dirname(p)))].flatMap((d) =>
    readdirSync(join(sys.root, d))
      .filter((f) => f.includes(".ns-"))
      .map((f) => join(d, f)),
  );
  return [`${STATE}/staging`, `${STATE}/backup/pending-apply.json`]
    .filter((p) => existsSync(join(sys.root, p)))
    .concat(aside);
}

const poll = async <T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> => {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

const agentJournal = async (pid: number): Promise<string> =>
  (await sys.run(["journalctl", "--no-pager", "-o", "cat", "-u", AGENT_UNIT, `_PID=${pid}`])).stdout;

// The controller dials the agent's gRPC port: blackholed inside the container's namespace, the
// restarted agent's recovered files are looked at before the controller can push it anything.
const CUT = [
  ["sport", "7444"],
  ["dport", "7444"],
] as const;
let linkCut = false;
async function cutAgentLink(cut: boolean): Promise<void> {
  if (cut === linkCut) return;
  for (const [key, port] of CUT) await sys.ns.run("ip", ["rule", cut ? "add" : "del", key, port, "blackhole"]);
  linkCut = cut;
}

/**
 * One agent SIGKILL inside an apply on the `--mail` layout, armed for exactly one process: the kill
 * point goes into agent.env, the unit is restarted (the process reads it at exec), and the line is
 * removed again before the change is pushed, so systemd's own restart after the kill runs unarmed.
 */
async function killInsideApply(point: string, change: readonly string[], expected: "back" | "forward"): Promise<void> {
  const ENV = "/etc/netserva-mail/agent.env";
  await waitApplied(h, "vn1", 180_000);
  const beforePaths = manifestPaths();
  const before = configTree();
  const envFile = join(sys.root, ENV.slice(1));
  const envBefore = readFileSync(envFile, "utf8");
  // Written through the root on the host: no shell in the booted system.
  appendFileSync(envFile, `NETSERVA_AGENT_KILL_AT=${point}\n`);
  let armedPid = 0;
  try {
    await sys.ok(["systemctl", "restart", AGENT_UNIT]);
    armedPid = await mainPid();
    await poll("the armed agent serving", 120_000, async () =>
      /agent serving/.test(await agentJournal(armedPid)) ? true : undefined,
    );
  } finally {
    writeFileSync(envFile, envBefore);
  }
  expect(readFileSync(envFile, "utf8")).not.toContain("KILL_AT");
  await waitApplied(h, "vn1", 180_000);
  const restartsBefore = await unitRestarts(AGENT_UNIT);

  let after = new Map<string, string>();
  let afterPaths: string[] = [];
  try {
    expect((await h.cli(["vnode", "set", "vn1", ...change])).code).toBe(0);
    await poll(`the agent killed at ${point}`, 180_000, async () =>
      (await agentJournal(armedPid)).includes(`kill point ${point} reached`) ? true : undefined,
    );
    // Before systemd's RestartSec (2 s) is over: the new process starts with the link cut.
    await cutAgentLink(true);
    const diedAt = Date.now();
    const pid = await poll("systemd's restart of the agent", 60_000, async () => {
      const now = await mainPid();
      return now > 0 && now !== armedPid && (await unitState(AGENT_UNIT, "is-active")) === "active" ? now : undefined;
    });
    expect(await unitRestarts(AGENT_UNIT)).toBe(restartsBefore + 1);
    const journal = await poll("the restarted agent serving", 120_000, async () => {
      const j = await agentJournal(pid);
      return /agent serving/.test(j) ? j : undefined;
    });
    expect(journal).not.toContain("kill point");
    const finished = journal.split("\n").find((l) => l.includes("interrupted apply finished at start-up")) ?? "";
    expect(finished, journal).toContain(expected);
    const recoveredPaths = manifestPaths();
    const recovered = configTree();
    expect(mailLeftovers()).toEqual([]);
    await deliverAndFind(t, "alice", D, `after a kill at ${point}`);
    const imap = new ImapFlow({
      host: sys.ns.nsAddress,
      port: 993,
      secure: true,
      auth: { user: `alice@${D}`, pass: PASS },
      tls: { ca: t.ca, servername: HOST },
      logger: false,
    });
    imap.on("error", () => undefined);
    await imap.connect();
    await imap.logout();

    await cutAgentLink(false);
    await waitApplied(
      h,
      "vn1",
      180_000,
      async () =>
        (
          await sys.run([
            "sh",
            "-c",
            "ls -la /etc/netserva-mail/tls /etc/postfix; postconf -n | grep -i tls; tail -n 60 /var/log/netserva-mail/postfix.log; journalctl --no-pager -o cat -n 60 -u " +
              AGENT_UNIT,
          ])
        ).stdout,
    );
    const seconds = (Date.now() - diedAt) / 1000;
    afterPaths = manifestPaths();
    after = configTree();
    const all = [...new Set([...beforePaths, ...recoveredPaths, ...afterPaths])].sort();
    const [b, r, a] = [before, recovered, after].map((tree) => digestOf(tree, all));
    // The change changed managed files, and recovery landed on exactly one side of it.
    expect(a).not.toBe(b);
    const side = r === b ? "old" : r === a ? "new" : "mixed";
    recordChaos({
      fault: "agent SIGKILL",
      where: `${point} (config, --mail under systemd)`,
      times: 1,
      config: side,
      mailAccepted: true,
      converged: true,
      secondsToConverge: Math.round(seconds * 10) / 10,
      lost: 0,
      duplicated: 0,
      note: `vnode set ${change.join(" ")}; NRestarts ${restartsBefore}→${restartsBefore + 1}`,
    });
    const mixed = all.filter((p) => recovered.get(p) !== before.get(p) && recovered.get(p) !== after.get(p));
    expect(side, `neither side: ${mixed.join(", ")}`).toBe(expected === "back" ? "old" : "new");
  } finally {
    await cutAgentLink(false);
  }
}

// In order (opted out of the suite's shuffle): one installed system's life, install → enroll →
// change → restart → remove; each step needs the one before.
describe.skipIf(!canRun)(
  "booted Debian 12 with systemd: packages, units, enrolled agent, real mail",
  { shuffle: false },
  () => {
    beforeAll(async () => {
      [sys, h, pkgs] = await Promise.all([
        bootSystem("systemd", "bootsd"),
        startHarness({ healthIntervalMs: 1000 }),
        buildPackages(),
      ]);
      agentDeb = copyIn(sys, pkgs.agent);
      controllerDeb = copyIn(sys, pkgs.controller);
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
      expect(await sys.ok(["systemd-analyze", "verify", AGENT_UNIT])).toBe("");
      expect((await sys.run(["systemctl", "is-enabled", AGENT_UNIT])).stdout.trim()).toBe("enabled");
      // The agent package carries the agent's modules only: no controller code, no database library.
      const files = await sys.ok(["dpkg", "-L", "netserva-mail-agent"]);
      expect(files).toMatch(/\/app\/agent\/agent-daemon\.ts$/m);
      expect(files).not.toMatch(/\/app\/controller\/|@mikro-orm|pglite|\/node_modules\/pg\//);
      await sys.ok(["dpkg", "-r", "netserva-mail-agent"]);
      await sys.ok(["dpkg", "-P", "netserva-mail-agent"]);
      expect(await fileListing(sys)).toEqual(before);
      expect(sha(mainCf())).toBe(stockMainCf);
    }, 300_000);

    it("enrolls with the host's controller and serves mail through the stock units", async () => {
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
        "/var/lib/netserva-mail-agent",
      ]);
      await sys.ok([
        "sh",
        "-c",
        `printf 'NETSERVA_AGENT_ARGS="--listen=${sys.ns.nsAddress}:7444 --mail-listen=${sys.ns.nsAddress} --metrics-listen=${sys.ns.nsAddress}:${METRICS_PORT} --filter-offline --clamav-test-signatures --no-auth-penalty"\\n' > /etc/netserva-mail/agent.env`,
      ]);
      await sys.ok(["systemctl", "enable", "--now", AGENT_UNIT]);
      expect(
        (await h.cli(["vnode", "set", "vn1", "--mail-hostname", HOST, "--mail-listen", sys.ns.nsAddress])).code,
      ).toBe(0);
      await manageStockVnode(h, "vn1");
      await waitApplied(h, "vn1");
      expect((await h.cli(["addvmaildomain", "vn1", D, "--skip-dns-check"])).code).toBe(0);
      expect((await h.cli(["addvmail", "vn1", `alice@${D}`, "--password-stdin"], `${PASS}\n`)).code).toBe(0);
      await waitApplied(h, "vn1");
      // The agent took over the stock files, kept aside once at install.
      expect(sha(mainCf())).not.toBe(stockMainCf);
      expect(await sys.ok(["tar", "-tf", "/var/lib/netserva-mail-agent/stock/files.tar"])).toMatch(
        /^etc\/postfix\/main\.cf$/m,
      );
      // The stock units run the daemons.
      for (const unit of ["postfix@-.service", "dovecot.service"])
        expect(await unitState(unit, "is-active")).toBe("active");
      // Taking over a running stock Postfix changes its listeners: systemctl restart postfix.
      expect(postfixMasterPid(sys)).not.toBe(stockMaster);
      // Health carries systemd's own view of each daemon.
      await waitServices(h, "vn1", (sv) =>
        ["postfix", "dovecot"].every((n) => sv.find((x) => x.name === n)?.detail === "systemd: active (running)"),
      );

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
    }, 600_000);

    it("refuses a change its checker rejects (a broken hand-made Rspamd override), mail flowing", async () => {
      const managed = sha(mainCf());
      const err = await refuseRspamdOverBrokenOverride(sys, h, "vn1");
      expect(err).toMatch(/refused generation \d+: .*rspamd/i);
      expect(sha(mainCf())).toBe(managed);
      await deliverAndFind(t, "alice", D, "while the change is refused");
    }, 300_000);

    it("applies a config change through systemd: Rspamd enabled and started, Postfix reloaded, GTUBE refused", async () => {
      await sys.ok(["rm", "-f", BROKEN_RSPAMD_OVERRIDE]);
      // Stopped and disabled: the agent must start it and enable it (systemctl enable).
      await sys.ok(["systemctl", "disable", "--now", "rspamd.service"]);
      expect(await unitState("rspamd.service", "is-enabled")).toBe("disabled");
      const master = postfixMasterPid(sys);
      // Set again: a newer generation, pushed now (rather than at the refused one's retry time).
      expect((await h.cli(["vnode", "set", "vn1", "--rspamd", "1"])).code).toBe(0);
      await waitApplied(h, "vn1", 180_000);
      expect(await unitState("rspamd.service", "is-active")).toBe("active");
      expect(await unitState("rspamd.service", "is-enabled")).toBe("enabled");
      // Postfix picked up the milter through systemctl reload: the same master, and the journal says so.
      expect(postfixMasterPid(sys)).toBe(master);
      const journal = await sys.ok(["journalctl", "--no-pager", "-o", "cat", "-u", "postfix@-.service"]);
      expect(journal).toMatch(/Reload/);
      await waitServices(h, "vn1", (sv) => sv.find((x) => x.name === "rspamd")?.detail === "systemd: active (running)");
      const spam = await sendInboundFinal(
        t,
        `alice@${D}`,
        gtubeMessage({ from: "carol@remote.test", to: `alice@${D}` }),
      );
      const why = async () =>
        `${spam.stage}: ${spam.reply.text}\n` +
        (
          await sys.run([
            "sh",
            "-c",
            "journalctl --no-pager -o cat -n 40 -u rspamd.service; tail -n 30 /var/log/netserva-mail/postfix.log; ls -la /run/rspamd",
          ])
        ).stdout;
      expect(spam.reply.code, spam.reply.code === 554 ? "" : await why()).toBe(554);
      await deliverAndFind(t, "alice", D, "after the reload");

      // Off again: the agent stops it through systemctl.
      expect((await h.cli(["vnode", "set", "vn1", "--rspamd", "0"])).code).toBe(0);
      await waitApplied(h, "vn1", 180_000);
      expect(await unitState("rspamd.service", "is-active")).toBe("inactive");
      await deliverAndFind(t, "alice", D, "with rspamd off");
    }, 600_000);

    it("finishes a config change a SIGKILL interrupted on the --mail layout: all old or all new, restarted by systemd", async () => {
      // After the first rename into /etc (Rspamd's local.d is on disk from the test before, so
      // main.cf is the one file this change renames): not committed, so rolled back at start-up,
      // then re-pushed, and the re-push starts Rspamd before Postfix needs its milter.
      await killInsideApply("rename#1", ["--rspamd", "1"], "back");
      expect(await unitState("rspamd.service", "is-active")).toBe("active");
      await deliverAndFind(t, "alice", D, "after both kills");
    }, 900_000);

    it("keeps mail flowing when postfix and dovecot-core are reinstalled under it (conffiles kept)", async () => {
      const managed = sha(mainCf());
      await reinstallStockPackages(sys, ["postfix", "dovecot-core"]);
      // Whatever the maintainer scripts touched is drift: the reconciler writes the desired files back.
      await waitApplied(h, "vn1", 180_000);
      const deadline = Date.now() + 120_000;
      while (sha(mainCf()) !== managed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
      expect(sha(mainCf())).toBe(managed);
      for (const unit of ["postfix@-.service", "dovecot.service"])
        expect(await unitState(unit, "is-active")).toBe("active");
      await deliverAndFind(t, "alice", D, "after the reinstall");
    }, 600_000);

    it("is restarted by systemd after kill -9, and the sandbox refused none of its writes", async () => {
      const before = await mainPid();
      expect(before).toBeGreaterThan(0);
      await sys.ok(["kill", "-9", String(before)]);
      const deadline = Date.now() + 60_000;
      let after = 0;
      while (Date.now() < deadline) {
        after = await mainPid();
        const active = (await sys.run(["systemctl", "is-active", AGENT_UNIT])).stdout.trim();
        if (after > 0 && after !== before && active === "active") break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(after).not.toBe(before);
      expect(after).toBeGreaterThan(0);
      await waitApplied(h, "vn1");
      // Every write path above ran under the shipped unit (ProtectSystem=strict + ReadWritePaths).
      const journal = await sys.ok(["journalctl", "--no-pager", "-o", "cat", "-u", AGENT_UNIT]);
      expect(journal).not.toMatch(/EROFS|EACCES|read-only file system|permission denied/i);
      expect(journal).toMatch(/agent serving/);
    }, 180_000);

    it("brings a kill -9'd Postfix master and Dovecot back through the shipped Restart= drop-ins", async () => {
      const units = ["postfix@-.service", "dovecot.service"] as const;
      // The Postfix master by its pid file (what the PIDFile= drop-in lets systemd track).
      const master = postfixMasterPid(sys);
      expect(master).toBeGreaterThan(0);
      expect(await unitPid("postfix@-.service")).toBe(master);
      const dovecot = await unitPid("dovecot.service");
      expect(dovecot).toBeGreaterThan(0);
      const restartsBefore = await Promise.all(units.map(unitRestarts));
      await sys.ok(["kill", "-9", String(master), String(dovecot)]);
      const deadline = Date.now() + 90_000;
      const back = async (): Promise<boolean> => {
        const pids = [postfixMasterPid(sys), await unitPid("postfix@-.service"), await unitPid("dovecot.service")];
        const active = await Promise.all(units.map((u) => unitState(u, "is-active")));
        return (
          pids[0] !== master &&
          pids[0] === pids[1] &&
          pids[2]! > 0 &&
          pids[2] !== dovecot &&
          active.every((a) => a === "active")
        );
      };
      while (!(await back()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      const why = async (): Promise<string> =>
        (
          await sys.run([
            "sh",
            "-c",
            "systemctl status --no-pager postfix@-.service dovecot.service; journalctl --no-pager -n 80 -u postfix@-.service -u dovecot.service",
          ])
        ).stdout;
      expect(await back(), await why()).toBe(true);
      // systemd's own restarts (not the agent's), each after the kill it saw.
      const restartsAfter = await Promise.all(units.map(unitRestarts));
      units.forEach((u, i) => expect(restartsAfter[i], u).toBe(restartsBefore[i]! + 1));
      for (const unit of units) {
        const journal = await sys.ok(["journalctl", "--no-pager", "-o", "cat", "-u", unit]);
        expect(journal, unit).toMatch(/code=killed, status=9\/KILL/);
      }
      // The deaths lasted RestartSec (2 s), often between two reports: health still shows them,
      // counted by the agent from the units' NRestarts with how the master ended, as a problem
      // in mail:status and in the metric.
      const shown = await waitRestartsShown(h, "vn1", ["postfix", "dovecot"], 1);
      for (const name of ["postfix", "dovecot"]) {
        const s = shown.services.find((x) => x.name === name);
        expect(s?.restarts, name).toBe(1);
        expect(s?.lastRestartReason, name).toBe(KILLED);
        expect(shown.problems.join("\n")).toContain(`${name} died and was restarted (1x since the agent started`);
      }
      const metric = await restartMetric();
      expect(metric.get("postfix")).toBe(1);
      expect(metric.get("dovecot")).toBe(1);
      // Health shows the units running again; SMTP greets and delivers through Dovecot's LMTP.
      await waitServices(h, "vn1", (sv) =>
        ["postfix", "dovecot"].every((n) => sv.find((x) => x.name === n)?.detail === "systemd: active (running)"),
      );
      await deliverAndFind(t, "alice", D, "after the daemons were killed");
    }, 180_000);

    it("brings a kill -9'd clamd back through the shipped Restart= drop-in, shown in health and the metric", async () => {
      const unit = "clamav-daemon.service";
      // Offline: no freshclam database (main.cvd, daily.cvd), only the agent's EICAR signature.
      // Debian's units refuse to start without the former; this test-only drop-in lifts that.
      for (const u of [unit, "clamav-daemon.socket"])
        await sys.ok([
          "sh",
          "-c",
          `mkdir -p /etc/systemd/system/${u}.d && printf '[Unit]\\nConditionPathExistsGlob=\\n' > /etc/systemd/system/${u}.d/test-offline.conf`,
        ]);
      await sys.ok(["systemctl", "daemon-reload"]);
      expect((await h.cli(["vnode", "set", "vn1", "--rspamd", "1", "--clamav", "1"])).code).toBe(0);
      await waitApplied(h, "vn1", 300_000);
      await waitServices(
        h,
        "vn1",
        (sv) => sv.find((x) => x.name === "clamd")?.detail === "systemd: active (running)",
        180_000,
      );
      const eicar = async (label: string): Promise<void> => {
        const sent = await sendInboundFinal(
          t,
          `alice@${D}`,
          eicarMessage({ from: "carol@remote.test", to: `alice@${D}` }),
        );
        expect(sent.reply.code, `${label}: ${sent.reply.text}`).toBe(554);
        expect(sent.reply.text).toContain("Eicar-Test-Signature");
      };
      await eicar("before the kill");

      const pid = await unitPid(unit);
      expect(pid).toBeGreaterThan(0);
      const before = await unitRestarts(unit);
      await sys.ok(["kill", "-9", String(pid)]);
      const deadline = Date.now() + 120_000;
      const back = async (): Promise<boolean> => {
        const now = await unitPid(unit);
        return now > 0 && now !== pid && (await unitState(unit, "is-active")) === "active";
      };
      while (!(await back()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      const why = async (): Promise<string> =>
        (await sys.run(["sh", "-c", `systemctl status --no-pager ${unit}; journalctl --no-pager -n 60 -u ${unit}`]))
          .stdout;
      expect(await back(), await why()).toBe(true);
      expect(await unitRestarts(unit)).toBe(before + 1);
      const shown = await waitRestartsShown(h, "vn1", ["clamd"], 1);
      const clamd = shown.services.find((x) => x.name === "clamd");
      expect(clamd?.restarts).toBe(1);
      expect(clamd?.lastRestartReason).toBe(KILLED);
      expect(shown.problems.join("\n")).toContain("clamd died and was restarted (1x since the agent started");
      expect((await restartMetric()).get("clamd")).toBe(1);
      // Rspamd scans through the new clamd (it may still be loading: a 4xx is retried).
      await eicar("after the kill");
      await deliverAndFind(t, "alice", D, "after clamd was killed");

      expect((await h.cli(["vnode", "set", "vn1", "--rspamd", "0", "--clamav", "0"])).code).toBe(0);
      await waitApplied(h, "vn1", 180_000);
      await sys.ok([
        "rm",
        "-f",
        `/etc/systemd/system/${unit}.d/test-offline.conf`,
        "/etc/systemd/system/clamav-daemon.socket.d/test-offline.conf",
      ]);
      await sys.ok(["systemctl", "daemon-reload"]);
    }, 600_000);

    it("removing the agent package puts the stock files back; the controller package never purges its CA", async () => {
      await sys.ok(["dpkg", "-r", "netserva-mail-agent"]);
      expect(sha(mainCf())).toBe(stockMainCf);
      expect(existsSync(join(sys.root, "etc/postfix/sqlite-virtual-domains.cf"))).toBe(false);

      const before = await fileListing(sys);
      await sys.ok(["dpkg", "-i", controllerDeb]);
      expect(await sys.ok(["systemd-analyze", "verify", "netserva-mail.service"])).toBe("");
      await sys.ok(["netserva-mail", "init", "--listen", "127.0.0.1:7443"]);
      await sys.ok(["systemctl", "start", "netserva-mail.service"]);
      const deadline = Date.now() + 60_000;
      let status = await sys.run(["netserva-mail", "status", "--json"]);
      while (status.code !== 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        status = await sys.run(["netserva-mail", "status", "--json"]);
      }
      expect(status.code, status.stderr).toBe(0);
      // Active, and staying so (not "activating (auto-restart)" after a crash).
      const ctlDeadline = Date.now() + 60_000;
      let ctlState = await unitState("netserva-mail.service", "is-active");
      while (ctlState !== "active" && Date.now() < ctlDeadline) {
        await new Promise((r) => setTimeout(r, 500));
        ctlState = await unitState("netserva-mail.service", "is-active");
      }
      const ctlJournal = async () =>
        (await sys.run(["journalctl", "--no-pager", "-o", "cat", "-n", "60", "-u", "netserva-mail.service"])).stdout;
      expect(ctlState, ctlState === "active" ? "" : await ctlJournal()).toBe("active");
      const purge = await sys.run(["dpkg", "-P", "netserva-mail"]);
      expect(purge.code).toBe(0);
      expect(purge.stderr).toMatch(/kept \/var\/lib\/netserva-mail-controller/);
      expect(existsSync(join(sys.root, "var/lib/netserva-mail-controller/ca/ca.key"))).toBe(true);
      // Everything else is gone: the listing differs by the kept home only.
      const after = (await fileListing(sys)).filter((p) => !p.startsWith("/var/lib/netserva-mail-controller"));
      expect(after).toEqual(before);
    }, 300_000);
  },
);
