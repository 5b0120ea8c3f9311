// Mail in flight during everything (issue 13): a sender submits a steady stream over SMTP while the
// vnode goes through 50 config changes that re-render main.cf and dovecot.conf and reload both
// daemons (plus domain changes that reload Postfix), graceful restarts of Postfix and Dovecot, an
// agent SIGKILL (the agent started again) and a SIGKILL of each daemon's master. The sender retries
// a transaction that failed with a 4xx or a dropped connection, as a real MTA does, and counts a
// message as accepted only on 250. Afterwards every mailbox is counted over IMAP: no accepted
// Message-ID is missing, nothing bounced, the queue is empty, and there are no duplicates except
// after a daemon SIGKILL, where SMTP and LMTP are at-least-once: those are counted and reported.
// Limits only catch hangs; the seconds go into the report rows.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVnodePaths } from "../../agent/paths.ts";
import { createRspamdPaths } from "../../agent/rspamd/paths.ts";
import { createServiceControl } from "../../agent/sc/service-control.ts";
import { chaosFull, chaosLong, recordChaos } from "../chaos/report.ts";
import { startAgentProcess } from "../helpers/agent-process.ts";
import { SHARED_HS_CACHE } from "../helpers/filter-root.ts";
import { countInbox, startMailStream, type MailStream, type StreamMessage } from "../helpers/mail-stream.ts";
import { AGENT_PORT, startMailFleet, until, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";

const isRoot = process.getuid?.() === 0;
const PASSWORD = "Stream-secret-pass-1";

/** The normal suite: a few hundred messages, the changes back to back. --long: thousands. */
const SCALE = chaosLong
  ? { rounds: 3, changes: 50, workers: 4, perSecond: 10, between: 60 }
  : { rounds: 1, changes: 50, workers: 2, perSecond: 3, between: 10 };

const PHASES = {
  steady: "steady (no fault)",
  reloads: "config change + reload",
  graceful: "graceful daemon restart",
  agentKill: "agent SIGKILL",
  daemonKill: "daemon SIGKILL",
} as const;

interface Variant {
  readonly label: string;
  readonly tag: string;
  readonly rspamd: boolean;
}

const VARIANTS: Variant[] = [
  { label: "Postfix + Dovecot", tag: "mflight", rspamd: false },
  // The milter in the path too (milter_default_action = tempfail): only in scripts/chaos.
  ...(chaosFull ? [{ label: "Postfix + Rspamd milter + Dovecot", tag: "mflightr", rspamd: true }] : []),
];

const pidOf = (file: string): number => {
  try {
    return Number.parseInt(readFileSync(file, "utf8").trim(), 10);
  } catch {
    return 0;
  }
};

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const countLines = (file: string, pattern: RegExp): number => {
  try {
    return readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => pattern.test(l)).length;
  } catch {
    return 0;
  }
};

describe.skipIf(!isRoot).each(VARIANTS)("mail in flight during reloads, restarts and kills ($label)", (variant) => {
  let fleet: MailFleet;
  let vn: FleetVnode;
  let stream: MailStream | undefined;
  const mailboxes = ["ann", "ben", "cat", "dan"];
  let hostname = "";

  const statusRow = async (): Promise<Record<string, unknown> | undefined> => {
    const r = await fleet.harness.cli(["status", "--json"]);
    if (r.code !== 0) return undefined;
    return (JSON.parse(r.out) as Array<Record<string, unknown>>).find((row) => row["vnode"] === vn.name);
  };
  const converged = async (): Promise<boolean> => {
    const row = await statusRow();
    return row?.["connected"] === true && row["appliedGeneration"] === row["generation"];
  };

  /** Wait until the stream has had `n` more messages accepted: mail flows (progress, not time). */
  const flowing = async (n: number, what: string): Promise<void> => {
    const s = stream;
    if (!s) throw new Error("no stream");
    const target = s.accepted.size + n;
    await until(async () => (s.accepted.size >= target ? true : undefined), 180_000, `${n} messages accepted ${what}`);
  };

  const imapTarget = () => ({ host: vn.ns.nsAddress, port: 993, ca: fleet.caPem, servername: hostname });

  beforeAll(async () => {
    fleet = await startMailFleet(["mf1"], variant.tag, {
      listenFromState: true,
      ...(variant.rspamd ? { agentArgs: ["--filter-offline", "--filter-cache", SHARED_HS_CACHE] } : {}),
    });
    vn = fleet.vnodes[0] as FleetVnode;
    hostname = vn.mailHostname;
    if (variant.rspamd) {
      const set = await fleet.harness.cli(["vnode", "set", vn.name, "--rspamd", "1"]);
      expect(set.code, set.err).toBe(0);
    }
    for (const m of ["postmaster", ...mailboxes]) {
      const added = await fleet.harness.cli(
        ["addvmail", vn.name, `${m}@${vn.domain}`, "--password-stdin"],
        `${PASSWORD}\n`,
      );
      expect(added.code, added.err).toBe(0);
    }
    await until(
      async () =>
        (await countInbox(imapTarget(), `postmaster@${vn.domain}`, PASSWORD, () => true)) ? true : undefined,
      60_000,
      "postmaster to log in over IMAP",
    );
  }, 300_000);

  afterAll(async () => {
    await stream?.stop().catch(() => undefined);
    await fleet?.close();
  });

  /** One config change that re-renders main.cf and dovecot.conf (the mail host name: greeting,
   * TLS certificate) or, every fifth, adds a domain (Postfix reloads for it). */
  async function configChange(i: number): Promise<void> {
    let args: string[];
    if (i % 5 === 4) args = ["addvmaildomain", vn.name, `d${i}.${vn.domain}`, "--skip-dns-check"];
    else {
      hostname = hostname.startsWith("mail.") ? `mx.${vn.domain}` : `mail.${vn.domain}`;
      args = ["vnode", "set", vn.name, "--mail-hostname", hostname];
    }
    const r = await fleet.harness.cli(args);
    expect(r.code, r.err).toBe(0);
    expect(r.out, `${args.join(" ")}: ${r.err}`).toMatch(/live on \S+ at generation \d+/);
  }

  /** How long each change took end to end (CLI to live on the vnode): for the report's note. */
  const changeMs: number[] = [];

  async function reloads(round: number): Promise<{ postfix: number; dovecot: number }> {
    const paths = createVnodePaths(vn.root);
    const pf = /postfix\S*\/master\[\d+\]: reload/;
    const dc = /SIGHUP received - reloading configuration/;
    const before = { postfix: countLines(paths.postfixLog, pf), dovecot: countLines(paths.dovecotLog, dc) };
    for (let i = 0; i < SCALE.changes; i++) {
      const t0 = Date.now();
      await configChange(round * SCALE.changes + i);
      changeMs.push(Date.now() - t0);
    }
    return {
      postfix: countLines(paths.postfixLog, pf) - before.postfix,
      dovecot: countLines(paths.dovecotLog, dc) - before.dovecot,
    };
  }

  /** Postfix restarted by the agent itself (a listener change needs stop + start, not a reload),
   * there and back; then both daemons restarted through the agent's sc() (direct backend). */
  async function gracefulRestarts(): Promise<number> {
    const paths = createVnodePaths(vn.root);
    let restarts = 0;
    for (const listen of [`${vn.ns.nsAddress},127.0.0.1`, vn.ns.nsAddress]) {
      const before = pidOf(paths.postfixPidFile);
      const r = await fleet.harness.cli(["vnode", "set", vn.name, "--mail-listen", listen]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/live on \S+ at generation \d+/);
      expect(pidOf(paths.postfixPidFile), "Postfix restarted for a listener change").not.toBe(before);
      restarts += 1;
      await flowing(SCALE.between, `after the listener change to ${listen}`);
    }
    const sc = createServiceControl({ kind: "direct", paths, wrap: vn.ns.wrap });
    for (const [name, pidFile] of [
      ["dovecot", paths.dovecotPidFile],
      ["postfix", paths.postfixPidFile],
    ] as const) {
      const before = pidOf(pidFile);
      await sc.restart(name);
      expect(pidOf(pidFile), `${name} restarted`).not.toBe(before);
      restarts += 1;
      await flowing(SCALE.between, `after the ${name} restart`);
    }
    return restarts;
  }

  const startAgent = async (env?: Record<string, string>): Promise<void> => {
    vn.agent = await startAgentProcess({
      ns: vn.ns,
      home: join(fleet.harness.dir, `agent-${vn.name}`),
      root: vn.root,
      port: AGENT_PORT,
      logDir: fleet.logDir,
      mailListen: false,
      extraArgs: [
        "--metrics-listen",
        vn.metricsAddress,
        "--usage-interval",
        "1000",
        ...(variant.rspamd ? ["--filter-offline", "--filter-cache", SHARED_HS_CACHE] : []),
      ],
      ...(env ? { env } : {}),
    });
  };

  /** Two agent kills with mail flowing: SIGKILL while idle, then a change made while it is down;
   * started again armed to die in the middle of Postfix's reload for that change (the kill point
   * of agent/apply/kill-points.ts, when the reconciler pushes it); started again as it should be,
   * it recovers and the vnode converges on the new config. Returns the kills and the seconds
   * from the last start to converged. */
  async function agentKill(): Promise<{ kills: number; seconds: number }> {
    const first = vn.agent.child;
    const exited = new Promise((resolve) => first.once("exit", resolve));
    expect(first.pid).toBeGreaterThan(1);
    process.kill(first.pid as number, "SIGKILL");
    await exited;
    hostname = hostname.startsWith("mail.") ? `mx.${vn.domain}` : `mail.${vn.domain}`;
    const stored = await fleet.harness.cli(["vnode", "set", vn.name, "--mail-hostname", hostname]);
    expect(stored.code === 0 || /not pushed/.test(stored.err), stored.err).toBe(true);
    await flowing(SCALE.between, "while the agent is down");

    await startAgent({ NETSERVA_AGENT_KILL_AT: "reload:postfix" });
    const armed = vn.agent.child;
    await until(
      async () => (armed.exitCode !== null || armed.signalCode !== null ? true : undefined),
      180_000,
      "the agent to die in Postfix's reload",
    );
    expect(armed.signalCode ?? armed.exitCode).toBe("SIGKILL");
    await flowing(SCALE.between, "after the agent died mid-reload");

    const restartedAt = Date.now();
    await startAgent();
    await until(
      async () => ((await converged()) ? true : undefined),
      120_000,
      "the vnode to converge after the agent restart",
    );
    const seconds = (Date.now() - restartedAt) / 1000;
    const mainCf = readFileSync(createVnodePaths(vn.root).postfixMainCf, "utf8");
    expect(mainCf).toContain(`myhostname = ${hostname}`);
    return { kills: 2, seconds };
  }

  /** SIGKILL a daemon's master; the agent's supervisor starts it again under a new pid. */
  async function daemonKill(name: string, pidFile: string): Promise<number> {
    await until(async () => (alive(pidOf(pidFile)) ? true : undefined), 60_000, `${name} running`);
    const pid = pidOf(pidFile);
    process.kill(pid, "SIGKILL");
    const killedAt = Date.now();
    await until(
      async () => {
        const now = pidOf(pidFile);
        return now !== pid && alive(now) ? true : undefined;
      },
      120_000,
      `${name} restarted by the agent`,
    );
    return (Date.now() - killedAt) / 1000;
  }

  /** Deliver what is deferred now (postqueue -f, as an operator would) until the queue is empty. */
  async function drainQueue(): Promise<void> {
    const dir = createVnodePaths(vn.root).postfixDir;
    await until(
      async () => {
        await vn.ns.run("postqueue", ["-c", dir, "-f"]);
        const { stdout } = await vn.ns.run("postqueue", ["-c", dir, "-p"]);
        return /Mail queue is empty/.test(stdout) ? true : undefined;
      },
      180_000,
      "the Postfix queue to empty",
    );
  }

  it(
    "loses nothing, bounces nothing, and duplicates only after a daemon SIGKILL",
    async () => {
      const paths = createVnodePaths(vn.root);
      const recipients = mailboxes.map((m) => `${m}@${vn.domain}`);
      const s = startMailStream({
        host: vn.ns.nsAddress,
        port: 25,
        from: `postmaster@${vn.domain}`,
        recipients,
        workers: SCALE.workers,
        perSecond: SCALE.perSecond,
      });
      stream = s;
      const times = { reloads: 0, graceful: 0, agentKill: 0, daemonKill: 0 };
      const reloadLog = { postfix: 0, dovecot: 0 };
      const agentSeconds: number[] = [];
      const daemonSeconds: number[] = [];
      try {
        s.setPhase(PHASES.steady);
        await flowing(SCALE.between, "before any fault");
        for (let round = 0; round < SCALE.rounds; round++) {
          s.setPhase(PHASES.reloads);
          const r = await reloads(round);
          reloadLog.postfix += r.postfix;
          reloadLog.dovecot += r.dovecot;
          times.reloads += SCALE.changes;
          await flowing(SCALE.between, "after the config changes");

          s.setPhase(PHASES.graceful);
          times.graceful += await gracefulRestarts();

          s.setPhase(PHASES.agentKill);
          const killed = await agentKill();
          agentSeconds.push(killed.seconds);
          times.agentKill += killed.kills;
          await flowing(SCALE.between, "after the agent restart");

          s.setPhase(PHASES.daemonKill);
          const kills: Array<[string, string]> = [
            ["postfix", paths.postfixPidFile],
            ["dovecot", paths.dovecotPidFile],
          ];
          for (const [name, pidFile] of kills) {
            daemonSeconds.push(await daemonKill(name, pidFile));
            times.daemonKill += 1;
            await flowing(SCALE.between, `after the ${name} SIGKILL`);
          }
          if (variant.rspamd) {
            daemonSeconds.push(await daemonKill("rspamd", createRspamdPaths(vn.root).pidFile));
            times.daemonKill += 1;
            await flowing(SCALE.between, "after the rspamd SIGKILL");
          }
          s.setPhase(PHASES.steady);
          await flowing(SCALE.between, "after the round");
        }
      } finally {
        await s.stop();
      }

      // Every change really reloaded the daemons it re-rendered (else this proves nothing).
      const hostnameChanges = times.reloads - times.reloads / 5;
      expect(reloadLog.postfix, "Postfix reloads logged").toBeGreaterThanOrEqual(times.reloads);
      expect(reloadLog.dovecot, "Dovecot reloads logged").toBeGreaterThanOrEqual(hostnameChanges);

      // Deferred mail (a daemon was down) goes out; then count every mailbox until nothing is missing.
      await drainQueue();
      const accepted = [...s.accepted.values()];
      const ours = (id: string): boolean => s.accepted.has(id);
      // Copies in the message's own mailbox; one found in another mailbox is misdelivered.
      const copies = new Map<string, number>();
      const misdelivered: string[] = [];
      const foreign: Array<{ user: string; subject: string; from: string }> = [];
      const count = async (): Promise<number> => {
        copies.clear();
        misdelivered.length = 0;
        foreign.length = 0;
        for (const user of [...recipients, `postmaster@${vn.domain}`]) {
          const inbox = await countInbox(imapTarget(), user, PASSWORD, ours);
          for (const [id, n] of inbox.ids)
            if (s.accepted.get(id)?.to === user) copies.set(id, (copies.get(id) ?? 0) + n);
            else misdelivered.push(`${id} in ${user}`);
          for (const f of inbox.foreign) foreign.push({ user, subject: f.subject, from: f.from });
        }
        return accepted.filter((m) => !copies.has(m.id)).length;
      };
      const settledAt = Date.now();
      // Generous: only an actually lost message keeps this from reaching zero.
      while ((await count()) > 0 && Date.now() - settledAt < 120_000) {
        await vn.ns.run("postqueue", ["-c", paths.postfixDir, "-f"]);
        await new Promise((r) => setTimeout(r, 1000));
      }

      const lostBy = new Map<string, StreamMessage[]>();
      const dupBy = new Map<string, number>();
      for (const m of accepted) {
        const n = copies.get(m.id) ?? 0;
        if (n === 0) lostBy.set(m.phase, [...(lostBy.get(m.phase) ?? []), m]);
        if (n > 1) dupBy.set(m.phase, (dupBy.get(m.phase) ?? 0) + n - 1);
      }
      // Repeated LMTP deliveries the global Sieve rule dropped (a delivery cut off after Dovecot
      // stored the message: Postfix stopped, or Dovecot answered 421 while reloading), by phase.
      const repeatsBy = new Map<string, number>();
      for (const line of readFileSync(paths.dovecotLog, "utf8").split("\n")) {
        const id = /msgid=(<[^>]+>): discard action/.exec(line)?.[1];
        const m = id === undefined ? undefined : s.accepted.get(id);
        if (m) repeatsBy.set(m.phase, (repeatsBy.get(m.phase) ?? 0) + 1);
      }
      const bouncedLines = countLines(paths.postfixLog, /status=bounced/);
      const deferredLines = countLines(paths.postfixLog, /status=deferred/);
      const q = await vn.ns.run("postqueue", ["-c", paths.postfixDir, "-p"]);

      const rows: Array<{ key: keyof typeof PHASES | "steady"; where: string; times: number; secs?: number[] }> = [
        { key: "steady", where: "no fault (baseline)", times: 0 },
        {
          key: "reloads",
          where: "vnode set --mail-hostname (main.cf, dovecot.conf, TLS) and addvmaildomain, back to back",
          times: times.reloads,
        },
        {
          key: "graceful",
          where: "Postfix (listener change; sc restart) and Dovecot (sc restart)",
          times: times.graceful,
        },
        {
          key: "agentKill",
          where: "agent idle; then in Postfix's reload for the change made while it was down",
          times: times.agentKill,
          secs: agentSeconds,
        },
        {
          key: "daemonKill",
          where: variant.rspamd ? "Postfix, Dovecot and Rspamd masters" : "Postfix master, Dovecot master",
          times: times.daemonKill,
          secs: daemonSeconds,
        },
      ];
      for (const row of rows) {
        const phase = PHASES[row.key];
        const t = s.tally.get(phase) ?? { sent: 0, retries: 0, ambiguous: 0 };
        recordChaos({
          fault: row.key === "steady" ? "mail in flight" : `mail in flight: ${phase}`,
          where: `${variant.label}: ${row.where}`,
          times: row.times,
          config: row.key === "reloads" || row.key === "agentKill" ? "new" : "-",
          mailAccepted: true,
          converged: true,
          ...(row.secs && row.secs.length > 0 ? { secondsToConverge: Math.max(...row.secs) } : {}),
          lost: lostBy.get(phase)?.length ?? 0,
          duplicated: dupBy.get(phase) ?? 0,
          note:
            `${t.sent} sent, ${t.retries} retried (${t.ambiguous} after the final dot), ` +
            `${repeatsBy.get(phase) ?? 0} repeated LMTP deliveries dropped` +
            (row.key === "reloads" && changeMs.length > 0
              ? `; a change took ${(changeMs.reduce((a, b) => a + b, 0) / changeMs.length / 1000).toFixed(1)} s on average, CLI to live`
              : "") +
            (row.key === "steady"
              ? `; all phases: ${accepted.length} accepted, ${bouncedLines} bounced, ${deferredLines} deferral lines, ${foreign.length} foreign messages; reloads logged: Postfix ${reloadLog.postfix}, Dovecot ${reloadLog.dovecot}`
              : ""),
        });
      }

      expect(s.refused, "no 5xx for a stream of valid mail").toEqual([]);
      expect(s.abandoned, "every message accepted eventually").toEqual([]);
      expect(
        [...lostBy.values()].flat().map((m) => `${m.id} to ${m.to} (${m.phase})`),
        "accepted messages missing from the mailboxes",
      ).toEqual([]);
      expect(foreign, "no bounce or other stray message in any mailbox").toEqual([]);
      expect(misdelivered, "every message in its own mailbox").toEqual([]);
      expect(bouncedLines, "no status=bounced in the Postfix log").toBe(0);
      expect(q.stdout).toMatch(/Mail queue is empty/);
      // At-least-once only where a daemon was SIGKILLed; nowhere else a single duplicate.
      for (const key of ["steady", "reloads", "graceful", "agentKill"] as const)
        expect(dupBy.get(PHASES[key]) ?? 0, `duplicates during ${PHASES[key]}`).toBe(0);
      expect(accepted.length).toBeGreaterThan(100);
    },
    // A hang limit per round of faults: the long soak runs several.
    900_000 * SCALE.rounds,
  );
});
