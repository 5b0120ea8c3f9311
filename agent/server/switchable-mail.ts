// The vnode's mail behind one port that can switch between unmanaged (hands off) and managed
// (the mail host, agent/mail/mail-host.ts). The switch is explicit (SetManagement): to managed,
// the files the first apply will overwrite are kept aside once and the mail host is opened; to
// unmanaged, the mail host is closed and the daemons are left running as they are.
import type { Logger } from "../../common/log.ts";
import {
  detectManagement,
  keepAside,
  keptAsideDir,
  checkKeptAside,
  recordManagement,
  restoreKeptAside,
  wouldOverwrite,
  type RestoredFile,
  type Management,
} from "../mail/management.ts";
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { PreviewFile } from "../mail/mail-preview.ts";
import type { VnodePaths } from "../paths.ts";
import { flushDeferredMail } from "../postfix/flush-queue.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import type { MailHostPort } from "./mail-port.ts";
import { createUnmanagedPort } from "./unmanaged-port.ts";

export interface OpenedMail {
  readonly port: MailHostPort;
  close(): Promise<void>;
}

export interface SwitchOutcome {
  readonly managed: boolean;
  readonly reason: string;
  readonly overwrites: string[];
  readonly keptAsideDir: string;
  /** With restoreKeptAside: the files put back (or removed). */
  readonly restored: RestoredFile[];
}

export interface SwitchableMail {
  /** Delegates to the current port: callers keep one reference across switches. */
  readonly port: MailHostPort;
  readonly paths: VnodePaths;
  management(): Management;
  /** The daemon files a state would give the vnode, rendered only (managed or not). */
  preview(state: DesiredState): Promise<PreviewFile[]>;
  setManaged(request: {
    managed: boolean;
    dryRun: boolean;
    reason?: string;
    restoreKeptAside?: boolean;
  }): Promise<SwitchOutcome>;
  close(): Promise<void>;
}

export interface SwitchableMailOptions {
  readonly paths: VnodePaths;
  readonly sysadmDb: string;
  readonly sc: ServiceControl;
  /** Renders a state's daemon files without writing anything (agent/mail/mail-preview.ts). */
  preview(state: DesiredState): Promise<PreviewFile[]>;
  /** Opens the mail host and its port (creates the vmail user, the lookup DB, …). */
  open(): Promise<OpenedMail>;
  readonly log?: Logger;
}

export async function createSwitchableMail(o: SwitchableMailOptions): Promise<SwitchableMail> {
  let management = detectManagement(o.paths, o.sysadmDb);
  const unmanaged = createUnmanagedPort(o.sc, () => management.reason);
  let opened: OpenedMail | undefined = management.managed ? await o.open() : undefined;
  if (!management.managed) o.log?.warn("vnode unmanaged: hands off", { reason: management.reason });
  const current = (): MailHostPort => opened?.port ?? unmanaged;

  const port: MailHostPort = {
    applyState: (state, options) => current().applyState(state, options),
    applyChanges: (changes, options) => current().applyChanges(changes, options),
    digest: () => current().digest(),
    drift: () => current().drift(),
    services: () => current().services(),
    get health() {
      const p = current();
      return p.health?.bind(p);
    },
    get mailboxUsage() {
      const p = current();
      return p.mailboxUsage?.bind(p);
    },
    get daemonRestarts() {
      const p = current();
      return p.daemonRestarts?.bind(p);
    },
  };

  /**
   * Adoption's rollback, once the mail host is closed (nothing of ours restarts a daemon): the
   * daemons stop on our files, the kept-aside ones go back, and they start on those. Postfix's
   * queue survives the stop (mail accepted meanwhile is delivered after the start); stopped
   * daemons that were not running before are started too: NetServa's configuration serves.
   * Mail deferred across the switch is flushed then, not left to its backoff.
   */
  async function rollBack(): Promise<RestoredFile[]> {
    for (const name of ["postfix", "dovecot"] as const) await o.sc.stop(name);
    const restored = restoreKeptAside(o.paths);
    for (const name of ["dovecot", "postfix"] as const) await o.sc.start(name);
    await flushDeferredMail(o.paths.postfixDir, o.log ? { log: o.log } : {});
    o.log?.warn("NetServa's configuration restored", { files: restored.map((f) => f.path).join(",") });
    return restored;
  }

  return {
    port,
    paths: o.paths,
    management: () => management,
    preview: (state) => o.preview(state),
    async setManaged(request) {
      const dir = keptAsideDir(o.paths);
      if (request.managed) {
        if (management.managed) return { managed: true, reason: "", overwrites: [], keptAsideDir: dir, restored: [] };
        const overwrites = wouldOverwrite(o.paths);
        if (request.dryRun)
          return { managed: false, reason: management.reason, overwrites, keptAsideDir: dir, restored: [] };
        keepAside(o.paths, overwrites);
        const before = management;
        recordManagement(o.paths, { managed: true, reason: "" });
        try {
          opened = await o.open();
        } catch (error) {
          recordManagement(o.paths, before);
          throw error;
        }
        management = { managed: true, reason: "" };
        o.log?.warn("vnode switched to managed", { kept_aside: overwrites.join(",") || "nothing" });
        return { managed: true, reason: "", overwrites, keptAsideDir: dir, restored: [] };
      }
      const reason = request.reason?.trim() || "switched to unmanaged by the operator";
      if (request.dryRun)
        return {
          managed: management.managed,
          reason: management.reason,
          overwrites: [],
          keptAsideDir: dir,
          restored: [],
        };
      // Refused before anything changes when there is nothing (intact) to go back to.
      if (request.restoreKeptAside) checkKeptAside(o.paths);
      recordManagement(o.paths, { managed: false, reason });
      const closing = opened;
      opened = undefined;
      await closing?.close();
      management = { managed: false, reason };
      o.log?.warn("vnode switched to unmanaged: hands off", { reason });
      const restored = request.restoreKeptAside ? await rollBack() : [];
      return { managed: false, reason, overwrites: [], keptAsideDir: dir, restored };
    },
    close: async () => {
      await opened?.close();
    },
  };
}
