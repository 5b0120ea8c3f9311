// The daemons' own words about a reload: what Postfix and Dovecot wrote to their log files since a
// mark taken before it. Both can accept a reload and fail only in the log: Dovecot's master answers
// `doveadm reload` and then logs "listen(127.0.0.1, 993) failed: Address already in use"; a
// certificate its OpenSSL refuses shows as "ee key too small" at the first handshake; `postfix
// start` exits 1 with nothing on stderr and the bind error goes to the log only.
import { closeSync, openSync, readSync, statSync } from "node:fs";
import type { VnodePaths } from "../paths.ts";
import { setTimeout as delay } from "node:timers/promises";

export type MailDaemon = "postfix" | "dovecot";

/** Where each daemon's log was when the mark was taken. */
export type LogMarks = Readonly<Record<MailDaemon, { readonly path: string; readonly offset: number }>>;

/** Lines that say something went wrong (Postfix: fatal/panic/error, and TLS warnings). */
const TROUBLE: Record<MailDaemon, RegExp> = {
  postfix: /\b(fatal|panic|error):|warning:.*\b(TLS|SSL|certificate|private key)\b/i,
  dovecot: /\b(Fatal|Panic|Error):/,
};
/** At most this many lines, the first, each cut to LINE_MAX characters. */
const MAX_LINES = 4;
const LINE_MAX = 300;
/** A log read never takes more than this from the file (a flood of errors is not all news). */
const READ_MAX = 64 * 1024;

const sizeOf = (path: string): number => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};

export function markDaemonLogs(paths: VnodePaths): LogMarks {
  return {
    postfix: { path: paths.postfixLog, offset: sizeOf(paths.postfixLog) },
    dovecot: { path: paths.dovecotLog, offset: sizeOf(paths.dovecotLog) },
  };
}

function readSince(path: string, offset: number): string {
  const size = sizeOf(path);
  // A rotated (shorter) log started again: all of it is new.
  const from = Math.max(size < offset ? 0 : offset, size - READ_MAX);
  if (size <= from) return "";
  const buf = Buffer.alloc(size - from);
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const n = readSync(fd, buf, 0, buf.length, from);
    return buf.subarray(0, n).toString("utf8");
  } catch {
    return "";
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The distinct trouble lines `daemon` logged since the mark, without timestamps and pids. */
export function daemonWords(marks: LogMarks, daemon: MailDaemon): string[] {
  const { path, offset } = marks[daemon];
  const lines = readSince(path, offset)
    .split("\n")
    .filter((l) => TROUBLE[daemon].test(l))
    .map((l) =>
      l
        // "Dec 07 01:51:26 mail postfix/master[7250]: fatal: …" → "postfix/master: fatal: …",
        // "Dec 07 02:20:01 lmtp(2432): Error: …" → "lmtp: Error: …"
        .replace(/^\w{3} [ \d]\d \d\d:\d\d:\d\d (\S+ (?=\S+\[\d+\]:))?/, "")
        .replace(/^([^\s[(]+)(\[\d+\]|\(\d+\)):/, "$1:")
        // Dovecot's per-connection tail (": user=<>, rip=…, session=<…>"): the same error from
        // each login process is one line.
        .replace(/: user=<[^>]*>, rip=.*$/, "")
        .slice(0, LINE_MAX),
    );
  // The first lines are the cause (logged at the reload); later ones mostly repeat it per client.
  return [...new Set(lines)].slice(0, MAX_LINES);
}

/** `daemon`'s words since the mark, waiting up to `ms` for the first (a log line can trail the exit). */
export async function awaitDaemonWords(marks: LogMarks, daemon: MailDaemon, ms = 1_000): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const words = daemonWords(marks, daemon);
    if (words.length > 0 || Date.now() >= end) return words;
    await delay(50);
  }
}

/** " (postfix: …; …)" for the end of an error message, or "" when the daemons said nothing. */
export function quoteWords(byDaemon: ReadonlyArray<readonly [MailDaemon, readonly string[]]>): string {
  const said = byDaemon.filter(([, w]) => w.length > 0).map(([d, w]) => `${d} logged: ${w.join(" | ")}`);
  return said.length > 0 ? ` (${said.join("; ")})` : "";
}
