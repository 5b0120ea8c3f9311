// Adapts the vnode's mail host (agent/mail) to what the agent server needs, and makes sure the
// daemons run once a config has been applied: the first ApplyState on a fresh vnode starts them.
import type { DesiredState, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { MailHost } from "../mail/mail-host.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import type { ApplyOutcome, MailHostPort, ServiceStatus } from "./mail-port.ts";

export function adaptMailHost(host: MailHost, sc: ServiceControl, extraServices: () => Promise<ServiceStatus[]> = async () => []): MailHostPort {
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
    async applyState(state: DesiredState, options: { dryRun: boolean }): Promise<ApplyOutcome> {
      const outcome = await host.applyState(state, options);
      if (!options.dryRun) await ensureRunning();
      return outcome;
    },
    applyChanges: (changes: StateChange[], options: { dryRun: boolean }) => host.applyChanges(changes, options),
    async digest() {
      return (await status()).digest;
    },
    async drift() {
      return host.drift();
    },
    async services() {
      const own = (await status()).services.map((s) => ({ name: s.name, state: s.running ? "active" : "stopped", version: "", detail: s.detail ?? "" }));
      return [...own, ...(await extraServices())];
    },
  };
}
