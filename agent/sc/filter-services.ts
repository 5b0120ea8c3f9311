// Service definitions of the mail filters, Rspamd and clamd, for one vnode root. The direct
// backend drives them through their DirectDaemon (agent/rspamd/daemon.ts, agent/clamav/daemon.ts):
// both daemonise themselves, so start means "launch, then wait on /ping or PONG", not a pid file.
//
// Unit mapping: root "/" uses the stock units, systemd `rspamd.service` and
// `clamav-daemon.service` (Debian), OpenRC `rspamd` and `clamd` (Alpine; `clamav-daemon` on Debian). A private root maps to
// template units the operator installs, netserva-rspamd@<escaped root>.service and
// netserva-clamd@<escaped root>.service, whose ExecStart is the direct launch command
// (`rspamd -c /etc/rspamd/rspamd.conf --var=LOCAL_CONFDIR=<root>/etc/rspamd …`,
// `clamd -c <root>/etc/clamav/clamd.conf`); OpenRC `rspamd.<instance>` / `clamd.<instance>`.
import { existsSync } from "node:fs";
import type { VnodePaths } from "../paths.ts";
import { escapeRoot } from "./mail-services.ts";
import type { DaemonServiceDefinition, DirectDaemon } from "./service-definition.ts";

type FilterName = "rspamd" | "clamd";

const STOCK: Record<FilterName, { systemd: string; openrc: string }> = {
  rspamd: { systemd: "rspamd.service", openrc: "rspamd" },
  // Alpine's clamav-daemon package installs /etc/init.d/clamd; Debian's keeps its own name.
  clamd: {
    systemd: "clamav-daemon.service",
    openrc: existsSync("/etc/init.d/clamav-daemon") ? "clamav-daemon" : "clamd",
  },
};

export function filterService(name: FilterName, paths: VnodePaths, daemon: DirectDaemon): DaemonServiceDefinition {
  if (paths.isSystemRoot) return { name, daemon, systemdUnit: STOCK[name].systemd, openrcService: STOCK[name].openrc };
  return {
    name,
    daemon,
    systemdUnit: `netserva-${name}@${escapeRoot(paths.root)}.service`,
    openrcService: `${STOCK[name].openrc}.${paths.dovecotInstanceName}`,
  };
}
