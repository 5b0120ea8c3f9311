// Renders the whole local.d/ of a private Rspamd: workers, options, actions, DKIM signing,
// antivirus and the milter headers. Every file we manage is always present in the result (a
// module turned back on gets its file rewritten, not left stale), and every path is under the
// vnode root. Debian's /etc/rspamd/*.conf stays the base; local.d only merges over it.
import type { DkimKey, VnodeSettings } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { invalid } from "../../common/errors.ts";
import { checkDkimKeys } from "./dkim-keys.ts";
import type { RspamdPaths } from "./paths.ts";
import {
  DISABLED_MODULE,
  NETWORK_MODULES,
  renderAntivirus,
  renderForceActions,
  renderDkimSigning,
  renderMilterHeaders,
} from "./render-modules.ts";
import { bindSocket, GENERATED, parseListen, uclString } from "./ucl.ts";

export interface RspamdRenderOptions {
  readonly paths: RspamdPaths;
  readonly settings: VnodeSettings;
  readonly dkimKeys: readonly DkimKey[];
  /** clamd's LocalSocket (or host:port); required when settings.clamavEnabled. */
  readonly clamavSocket?: string;
  /** Where Postfix reaches the milter (proxy worker): "/abs/milter.sock" or "127.0.0.1:11332". */
  readonly milterListen: string;
  /** Scanner (rspamc, /checkv2); default a unix socket under the root. */
  readonly normalListen?: string;
  /** Web/controller API; default a unix socket under the root (Debian's password stays). */
  readonly controllerListen?: string;
  /** false: greylisting off (tests; it also needs Redis, which we do not configure). */
  readonly greylist?: false;
  /** Turn off every module that needs DNS or the network (see NETWORK_MODULES). */
  readonly disableNetworkModules: boolean;
  /** Resolvers as "ip:port"; default the system's resolv.conf. */
  readonly dnsServers?: readonly string[];
  readonly dnsTimeoutMs?: number;
  readonly rejectScore?: number;
  readonly addHeaderScore?: number;
  /** Scanner processes; default Rspamd's (one per CPU). */
  readonly normalWorkers?: number;
  /** Hyperscan cache; default DBDIR. Tests share one to skip a ~10 s compile per fresh root. */
  readonly hsCacheDir?: string;
  /**
   * Postfix's group (default "postfix"): the milter socket is 0660 in it, so Postfix reaches the
   * filter and no other local user can feed it mail (or read its verdicts) on Postfix's behalf.
   */
  readonly milterGroup?: string;
}

const DEFAULT_OWNER = "_rspamd";

function renderWorkers(o: RspamdRenderOptions, files: Map<string, string>): void {
  const workers = o.normalWorkers === undefined ? "" : `count = ${positiveInt("normalWorkers", o.normalWorkers)};\n`;
  files.set(
    "worker-normal.inc",
    `${GENERATED}bind_socket = ${bindSocket(o.normalListen ?? o.paths.normalSocket, "normalListen", { mode: "0660", owner: DEFAULT_OWNER })};\n${workers}`,
  );
  files.set(
    "worker-controller.inc",
    `${GENERATED}bind_socket = ${bindSocket(o.controllerListen ?? o.paths.controllerSocket, "controllerListen", { mode: "0600", owner: DEFAULT_OWNER })};\n`,
  );
  // self_scan: the proxy scans itself instead of forwarding to a normal worker, so milter
  // traffic is always scanned even if no normal worker is reachable.
  files.set(
    "worker-proxy.inc",
    `${GENERATED}bind_socket = ${bindSocket(o.milterListen, "milterListen", { mode: "0660", owner: DEFAULT_OWNER, group: o.milterGroup ?? "postfix" })};
milter = yes;
timeout = 120s;
count = 1;
upstream "local" {
  default = yes;
  self_scan = yes;
}
spam_header = "X-Spam";
reject_message = "Spam message rejected";
`,
  );
}

function renderOptions(o: RspamdRenderOptions): string {
  const lines = [GENERATED.trimEnd()];
  const dns: string[] = [];
  if (o.dnsServers !== undefined) {
    const servers = o.dnsServers.map((s, i) => {
      const l = parseListen(s, `dnsServers[${i}]`);
      if (l.kind !== "inet") throw invalid(`dnsServers[${i}]`, "must be ip:port");
      return `"${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port}"`;
    });
    dns.push(`  nameserver = [${servers.join(", ")}];`);
  }
  if (o.dnsTimeoutMs !== undefined) dns.push(`  timeout = ${positiveInt("dnsTimeoutMs", o.dnsTimeoutMs)}ms;`);
  if (o.disableNetworkModules) dns.push("  retransmits = 1;");
  if (dns.length > 0) lines.push("dns {", ...dns, "}");
  lines.push(`hs_cache_dir = ${uclString(`${o.hsCacheDir ?? o.paths.dbDir}/`, "hsCacheDir")};`);
  lines.push(`tempdir = ${uclString(o.paths.runDir, "tempdir")};`);
  return `${lines.join("\n")}\n`;
}

function renderActions(o: RspamdRenderOptions): string {
  const reject = o.rejectScore ?? 15;
  const addHeader = o.addHeaderScore ?? 6;
  if (!(addHeader > 0 && reject > addHeader))
    throw invalid("rejectScore", "must be greater than addHeaderScore, both positive");
  // GTUBE needs nothing here: Rspamd rejects it before any score is summed.
  return `${GENERATED}reject = ${reject};\nadd_header = ${addHeader};\ngreylist = ${o.greylist === false ? "null" : Math.min(4, addHeader / 2)};\n`;
}

function positiveInt(field: string, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw invalid(field, "must be a positive integer");
  return n;
}

/** local.d/ file name → content. DKIM key files come from renderDkimKeyFiles (0600, owned). */
export function renderRspamdLocalD(o: RspamdRenderOptions): Map<string, string> {
  const files = new Map<string, string>();
  const keys = checkDkimKeys(o.dkimKeys);
  if (o.settings.clamavEnabled && o.clamavSocket === undefined)
    throw invalid("clamavSocket", "required when clamav_enabled is set");
  renderWorkers(o, files);
  files.set("options.inc", renderOptions(o));
  files.set(
    "logging.inc",
    `${GENERATED}type = "file";\nfilename = ${uclString(o.paths.logFile, "logFile")};\nlevel = "info";\n`,
  );
  files.set("actions.conf", renderActions(o));
  files.set("milter_headers.conf", renderMilterHeaders());
  files.set("antivirus.conf", renderAntivirus(o.settings.clamavEnabled ? o.clamavSocket : undefined));
  files.set("force_actions.conf", renderForceActions(o.settings.clamavEnabled));
  files.set("dkim_signing.conf", renderDkimSigning(o.paths, keys));
  files.set(
    "greylist.conf",
    o.greylist === false
      ? `${GENERATED}enabled = false;\n`
      : `${GENERATED}# Debian defaults (active only with Redis).\n`,
  );
  for (const m of NETWORK_MODULES) {
    files.set(`${m}.conf`, o.disableNetworkModules ? DISABLED_MODULE : `${GENERATED}# Debian defaults.\n`);
  }
  return files;
}
