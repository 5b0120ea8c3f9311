// clamd.conf for a private clamd: unix socket, database, pid and log all under the root; no TCP
// listener, no freshclam here (signature updates are the operator's freshclam, pointed at dbDir).
import { invalid } from "../../common/errors.ts";
import type { ClamavPaths } from "./paths.ts";

export interface ClamdRenderOptions {
  readonly paths: ClamavPaths;
  /** clamd drops to this user after start; it must own runDir and logDir and read dbDir. */
  readonly user?: string;
  /** Rspamd's workers connect as _rspamd: 666 unless a shared group is arranged. */
  readonly socketMode?: "666" | "660";
  readonly maxThreads?: number;
  /** Largest stream clamd accepts, in MiB; keep >= Postfix message_size_limit. */
  readonly streamMaxMiB?: number;
}

function plain(value: string, field: string): string {
  // clamd.conf has no quoting: a value runs to the end of the line.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value) || value.trim() !== value || value === "")
    throw invalid(field, "must be a non-empty single-line value");
  return value;
}

export function renderClamdConf(o: ClamdRenderOptions): string {
  const { paths } = o;
  const threads = o.maxThreads ?? 4;
  const stream = o.streamMaxMiB ?? 30;
  if (!Number.isInteger(threads) || threads < 1) throw invalid("maxThreads", "must be a positive integer");
  if (!Number.isInteger(stream) || stream < 1) throw invalid("streamMaxMiB", "must be a positive integer");
  const lines = [
    "# Rendered by the netserva-mail agent: changes here are overwritten.",
    `LocalSocket ${plain(paths.socket, "socket")}`,
    `LocalSocketMode ${o.socketMode ?? "666"}`,
    "FixStaleSocket yes",
    `DatabaseDirectory ${plain(paths.dbDir, "dbDir")}`,
    `PidFile ${plain(paths.pidFile, "pidFile")}`,
    `LogFile ${plain(paths.logFile, "logFile")}`,
    "LogTime yes",
    "LogFileMaxSize 10M",
    // Daemonise: the agent finds it by pid file like every other daemon it runs directly.
    "Foreground no",
    `User ${plain(o.user ?? "clamav", "user")}`,
    `MaxThreads ${threads}`,
    `StreamMaxLength ${stream}M`,
    "ScanMail yes",
    "ScanArchive yes",
    "SelfCheck 3600",
  ];
  return `${lines.join("\n")}\n`;
}
