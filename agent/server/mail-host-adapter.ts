// Adapts the vnode's mail host (agent/mail) to what the agent server needs, and makes sure the
// daemons run once a config has been applied: the first ApplyState on a fresh vnode starts them.
import type { DesiredState, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { MailHost } from "../mail/mail-host.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import type { MailHealthSource } from "../health/mail-health.ts";
import { cached } from "../health/bounded.ts";
import { daemonVersions } from "../info/system-info.ts";
import type { ApplyOutcome, MailHostPort, ServiceStatus } from "./mail-port.ts";

// sc() names the ClamAV daemon clamd; GetInfo's version probe calls it clamav.
const VERSION_NAME: Record<string, string> = { clamd: "clamav" };

export interface AdaptedMailHost extends MailHostPort {
  /** After an agent or vnode restart: run the daemons of the config applied before, if any. */
  resume(): Promise<boolean>;
}

export function adaptMailHost(
  host: MailHost,
  sc: ServiceControl,
  extraServices: () => Promise<ServiceStatus[]> = async () => [],
  mailHealth?: MailHealthSource,
): AdaptedMailHost {
  // Versions change only with a package upgrade: asked every 5 minutes at most.
  const versions = cached(300_000, async () => new Map((await daemonVersions()).map((d) => [d.name, d.version])));
  let applying = 0;
  let lastStatus: { at: number; value: Awaited<ReturnType<MailHost["status"]>> } | undefined;
  const status = async (): Promise<Awaited<ReturnType<MailHost["status"]>>> => {
    // Health asks every few seconds; the daemons are asked at most once a second.
    if (!lastStatus || Date.now() - lastStatus.at > 1000) lastStatus = { at: Date.now(), value: await host.status() };
    return lastStatus.value;
  };
  const ensureRunning = async (): Promise<void> => {
    for (const name of ["dovecot", "postfix"]) {
      if (!(await sc.status(name)).running) await sc.start(name);
    }
    lastStatus = undefined;
  };
  return {
    async resume() {
      // Nothing applied yet (generation 0): the first ApplyState starts the daemons.
      if ((await host.status()).generation === "0") return false;
      let started = false;
      // Filters first: Postfix's milter (milter_default_action = tempfail) would defer every
      // message until the next apply if Rspamd stayed down after an agent or vnode restart.
      await host.ensureFilters();
      for (const name of ["dovecot", "postfix"]) {
        if (!(await sc.status(name)).running) {
          await sc.start(name);
          started = true;
        }
      }
      lastStatus = undefined;
      return started;
    },
    async applyState(state: DesiredState, options: { dryRun: boolean }): Promise<ApplyOutcome> {
      applying += 1;
      try {
        const outcome = await host.applyState(state, options);
        if (!options.dryRun) await ensureRunning();
        return outcome;
      } finally {
        applying -= 1;
        lastStatus = undefined;
      }
    },
    applyChanges: (changes: StateChange[], options: { dryRun: boolean }) => host.applyChanges(changes, options),
    async digest() {
      return (await status()).digest;
    },
    async drift() {
      return host.drift();
    },
    async services() {
      const current = await status();
      const known = await versions().catch(() => new Map<string, string>());
      // A daemon the applied config wants but that is not running has failed; before the first
      // apply nothing is wanted yet, so it is merely stopped. During an apply they are reloading.
      const applied = current.generation !== "0";
      const own = current.services.map((s) => ({
        name: s.name,
        state: s.running ? (applying > 0 ? "reloading" : "active") : applied ? "failed" : "stopped",
        version: known.get(VERSION_NAME[s.name] ?? s.name) ?? "",
        detail: s.detail ?? (s.running ? (s.pid ? `pid ${s.pid}` : "") : "not running"),
      }));
      return [...own, ...(await extraServices())];
    },
    ...(mailHealth ? { health: () => mailHealth.health(), mailboxUsage: () => mailHealth.mailboxes() } : {}),
  };
}
