// The one port between the agent server and the vnode's mail host (agent/mail/): what the server
// asks of mail (apply, digest, drift, services, health). Behind it: one apply at a time, and the
// daemons kept running once a config has been applied (the first ApplyState on a fresh vnode
// starts them). An agent without --mail has no port and serves the channel only.
import type { MailHealth } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { DesiredState, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { cached } from "../health/bounded.ts";
import type { MailHealthSource } from "../health/mail-health.ts";
import type { MailboxUsageRow } from "../health/mailbox-usage.ts";
import { daemonVersions } from "../info/system-info.ts";
import type { ApplyOutcome, MailHost } from "../mail/mail-host.ts";
import { flushDeferredMail } from "../postfix/flush-queue.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import { createDaemonSupervisor, type DaemonSupervisor } from "../sc/daemon-supervisor.ts";
import type { RestartRecord } from "../sc/restart-record.ts";
import { createSystemdRestartWatch, SHOW_PROPERTIES, type SystemdRestartWatch } from "../sc/systemd-restarts.ts";
import { killOrphanedSession, runProgram } from "../process.ts";
import type { Logger } from "../../common/log.ts";

export type { ApplyOutcome } from "../mail/mail-host.ts";

/** A daemon as the health report shows it. */
export interface ServiceReport {
  name: string;
  state: string;
  version: string;
  detail: string;
  /** Deaths followed by a restart (systemd's or the agent's) since the agent started; 0: none. */
  restarts?: number;
  lastRestartUnixMs?: bigint;
  lastRestartReason?: string;
}

export interface MailHostPort {
  applyState(state: DesiredState, options: { dryRun: boolean }): Promise<ApplyOutcome>;
  applyChanges(changes: readonly StateChange[], options: { dryRun: boolean }): Promise<ApplyOutcome>;
  digest(): Promise<string>;
  drift(): Promise<string[]>;
  services(): Promise<ServiceReport[]>;
  /** Mail health for the report and metrics (queue, users, filters, disk, quota, TLS). */
  health?(): Promise<MailHealth>;
  /** Every mailbox's usage (the report carries only a summary). */
  mailboxUsage?(): Promise<MailboxUsageRow[]>;
  /** Daemon restarts since the agent started, per daemon: the agent's own (direct mode, OpenRC)
   * or systemd's (its NRestarts, as the agent saw them rise). */
  daemonRestarts?(): ReadonlyMap<string, number>;
  /** Stop watching the daemons (agent shutdown). */
  close?(): void;
}

/**
 * A queue that runs one piece of work at a time, in order; a failure does not block the next. A
 * CLI push and the reconciler can arrive together, and two applies interleaving in the staging
 * directory would check each other's half-written files.
 */
export function oneAtATime(): <R>(work: () => Promise<R>) => Promise<R> {
  let tail: Promise<unknown> = Promise.resolve();
  return (work) => {
    const run = tail.then(work, work);
    tail = run.catch(() => undefined);
    return run;
  };
}

// sc() names the ClamAV daemon clamd; GetInfo's version probe calls it clamav.
const VERSION_NAME: Record<string, string> = { clamd: "clamav" };
const MAIL_DAEMONS = ["dovecot", "postfix"] as const;

/**
 * The port over a mail host. After an agent or vnode restart it first runs the daemons of the
 * config applied before, if any (generation 0: nothing applied, the first ApplyState starts them).
 */
export interface MailPortOptions {
  /** Direct mode: how often the daemons' pids are checked (default 2 s). */
  superviseCheckMs?: number;
  /** systemd: how often the units' restart counters are read (default 1 s). */
  restartCheckMs?: number;
  log?: Logger;
}

export async function openMailPort(
  host: MailHost,
  sc: ServiceControl,
  mailHealth?: MailHealthSource,
  options: MailPortOptions = {},
): Promise<MailHostPort> {
  // Versions change only with a package upgrade: asked every 5 minutes at most.
  const versions = cached(300_000, async () => new Map((await daemonVersions()).map((d) => [d.name, d.version])));
  const queued = oneAtATime();
  let applying = 0;
  let lastStatus: { at: number; value: Awaited<ReturnType<MailHost["status"]>> } | undefined;
  const status = async (): Promise<Awaited<ReturnType<MailHost["status"]>>> => {
    // Health asks every few seconds; the daemons are asked at most once a second.
    if (!lastStatus || Date.now() - lastStatus.at > 1000) lastStatus = { at: Date.now(), value: await host.status() };
    return lastStatus.value;
  };
  const ensureRunning = async (): Promise<void> => {
    // Filters first: Postfix's milter (milter_default_action = tempfail) would defer every
    // message until the next apply if Rspamd stayed down after an agent or vnode restart.
    await host.ensureFilters();
    for (const name of MAIL_DAEMONS) {
      if ((await sc.status(name)).running) continue;
      // One the agent had to start should come back at boot too (Alpine enables nothing itself).
      await sc.enable(name);
      await sc.start(name);
    }
    lastStatus = undefined;
  };

  if ((await host.status()).generation !== "0") await ensureRunning();

  // What the supervisor watches: nothing before the first apply, nothing while an apply (whole
  // state or changes: both may stop, start and reload daemons) runs.
  let changing = 0;
  const watched = (current: Awaited<ReturnType<MailHost["status"]>>) =>
    applying > 0 || changing > 0 ? undefined : current.generation === "0" ? [] : current.services;
  // Without an init system nobody else restarts a daemon that died (see sc/daemon-supervisor.ts);
  // nor does OpenRC (start-stop-daemon does not watch Postfix or Dovecot). Under systemd the units'
  // Restart= does (the package's drop-ins) and the health report shows systemd's own state.
  // Its restarts queue behind applies, which stop and start daemons on purpose.
  const supervisor: DaemonSupervisor | undefined =
    sc.kind !== "systemd"
      ? createDaemonSupervisor({
          // The health report's own (1 s) cache: the report and the supervisor never disagree.
          statuses: async () => watched(await status()),
          start: (name) =>
            queued(async () => {
              // An apply may have run meanwhile: start only what is still wanted and still down.
              const wanted = (await host.status()).services.find((s) => s.name === name);
              if (!wanted || wanted.running || wanted.pid !== undefined) return false;
              await sc.start(name);
              lastStatus = undefined;
              // Mail deferred at LMTP while Dovecot was down goes now, not after its backoff.
              if (name === "dovecot" && (await sc.status("postfix")).running)
                await flushDeferredMail(host.paths.postfixDir, options.log ? { log: options.log } : {});
              return true;
            }),
          reap: killOrphanedSession,
          ...(options.log ? { log: options.log } : {}),
          ...(options.superviseCheckMs ? { checkMs: options.superviseCheckMs } : {}),
        })
      : undefined;
  supervisor?.start();
  // Under systemd its restarts are too quick to show as a failed report: the count shows them.
  const restartWatch: SystemdRestartWatch | undefined =
    sc.kind === "systemd"
      ? createSystemdRestartWatch({
          units: () =>
            (lastStatus?.value.services.map((s) => s.name) ?? [...MAIL_DAEMONS])
              .filter((name) => sc.registry.has(name))
              .map((name) => {
                const def = sc.registry.get(name);
                return { name, unit: def.systemdStatusUnit ?? def.systemdUnit };
              }),
          show: async (units) => {
            const r = await runProgram("systemctl", ["show", "-p", SHOW_PROPERTIES, ...units]);
            if (r.code !== 0) throw new Error(`systemctl show: ${r.stderr.trim()}`);
            return r.stdout;
          },
          journal: async (unit) =>
            (await runProgram("journalctl", ["-u", unit, "-o", "cat", "-n", "50", "--no-pager"])).stdout,
          ...(options.log ? { log: options.log } : {}),
          ...(options.restartCheckMs ? { checkMs: options.restartCheckMs } : {}),
        })
      : undefined;
  restartWatch?.start();
  const history = (name: string): RestartRecord | undefined => supervisor?.history(name) ?? restartWatch?.history(name);
  const withRestarts = (report: ServiceReport): ServiceReport => {
    const h = history(report.name);
    return h
      ? {
          ...report,
          restarts: h.count,
          lastRestartUnixMs: BigInt(h.lastAtMs),
          lastRestartReason: h.lastReason,
        }
      : report;
  };

  return {
    applyState: (state, options) =>
      queued(async () => {
        applying += 1;
        try {
          const outcome = await host.applyState(state, options);
          if (!options.dryRun) await ensureRunning();
          return outcome;
        } finally {
          applying -= 1;
          lastStatus = undefined;
        }
      }),
    applyChanges: (changes, options) =>
      queued(async () => {
        changing += 1;
        try {
          return await host.applyChanges(changes, options);
        } finally {
          changing -= 1;
        }
      }),
    async digest() {
      return (await status()).digest;
    },
    async drift() {
      return host.drift();
    },
    async services() {
      // A restart systemd made since the last tick is in this report, not the next one.
      await restartWatch?.check().catch((error: unknown) =>
        options.log?.warn("systemd restart check failed", {
          error: error instanceof Error ? error.message : String(error),
        }),
      );
      const current = await status();
      const known = await versions().catch(() => new Map<string, string>());
      // A daemon the applied config wants but that is not running has failed; before the first
      // apply nothing is wanted yet, so it is merely stopped. During an apply they are reloading.
      const applied = current.generation !== "0";
      // A death the report is about to show is the supervisor's to record (and the reason's).
      supervisor?.observe(watched(current) ?? []);
      return current.services.map((s) => {
        // The supervisor's view is newer than the cached status when it has seen a death.
        const failure = supervisor?.failure(s.name);
        if (failure) {
          const version = known.get(VERSION_NAME[s.name] ?? s.name) ?? "";
          return withRestarts({ name: s.name, state: "failed", version, detail: `${failure.reason}; restarting` });
        }
        return withRestarts({
          name: s.name,
          state: s.running ? (applying > 0 ? "reloading" : "active") : applied ? "failed" : "stopped",
          version: known.get(VERSION_NAME[s.name] ?? s.name) ?? "",
          detail: s.detail ?? (s.running ? (s.pid ? `pid ${s.pid}` : "") : "not running"),
        });
      });
    },
    ...(supervisor ? { daemonRestarts: () => supervisor.restarts(), close: () => supervisor.stop() } : {}),
    ...(restartWatch ? { daemonRestarts: () => restartWatch.restarts(), close: () => restartWatch.stop() } : {}),
    ...(mailHealth ? { health: () => mailHealth.health(), mailboxUsage: () => mailHealth.mailboxes() } : {}),
  };
}
