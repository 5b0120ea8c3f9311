// The mail port of an unmanaged vnode (agent/mail/management.ts): hands off. It reports whether
// Postfix and Dovecot run (asking the init system changes nothing) and refuses every apply with
// the reason and the way out; it renders, writes, starts and restarts nothing.
import { NetservaError } from "../../common/errors.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import type { MailHostPort } from "./mail-port.ts";

const DAEMONS = ["postfix", "dovecot"] as const;

export function unmanagedRefusal(reason: string): NetservaError {
  return new NetservaError(
    "failed_precondition",
    `this vnode is unmanaged (${reason}); nothing was changed: switch it with \`vnode manage\` or \`vnode adopt\` first`,
  );
}

export function createUnmanagedPort(sc: ServiceControl, reason: () => string): MailHostPort {
  return {
    applyState: () => Promise.reject(unmanagedRefusal(reason())),
    applyChanges: () => Promise.reject(unmanagedRefusal(reason())),
    digest: () => Promise.resolve(""),
    drift: () => Promise.resolve([]),
    async services() {
      return Promise.all(
        DAEMONS.map(async (name) => {
          const status = await sc.status(name).catch(() => ({ running: false, pid: undefined }));
          return {
            name,
            state: status.running ? "active" : "stopped",
            version: "",
            detail: `unmanaged (not watched)${status.pid ? `; pid ${status.pid}` : ""}`,
          };
        }),
      );
    },
  };
}
