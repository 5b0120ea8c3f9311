// Validators for a staged Postfix config dir. `postfix check` exits 0 on unknown parameters and
// only warns, and its fatal reasons may go to the mail log only: so any stderr output from
// `postfix check` or `postconf -n` fails, and new mail-log lines are quoted in the error.
// Each sqlite map is probed with `postmap -q`, because a broken map throttles Postfix for 60 s.
// Some fatals go nowhere we can read: `postfix check` rejects a parameter every Postfix program
// checks at start (inet_interfaces naming an address the vnode lacks: "no local interface found")
// before it has read where to log, so only syslog hears it. When check fails without a reason,
// the same main.cf is loaded by `postmap`, which writes such fatals to stderr, and its words are
// quoted instead.
import { openSync, readSync, closeSync, statSync } from "node:fs";
import type { Validator } from "../apply/apply-config-files.ts";
import type { VnodePaths } from "../paths.ts";
import { runProgram } from "../process.ts";
import { withoutQueueChurn } from "./queue-churn.ts";
import { MAP_NAMES, PROBE_KEY } from "./render-maps.ts";

export interface PostfixCheckOptions {
  readonly paths: VnodePaths;
  /** Run inside the vnode's namespace: inet_interfaces must exist where `postfix check` runs. */
  readonly wrap?: readonly string[];
}

export function postfixValidators(o: PostfixCheckOptions): Validator[] {
  const run = { wrap: o.wrap ?? [], timeoutMs: 30_000 };
  return [
    {
      name: "postfix check",
      async check(staged) {
        const dir = staged(o.paths.postfixDir);
        const logSize = sizeOf(o.paths.postfixLog);
        const check = await runProgram("postfix", ["-c", dir, "check"], run);
        const conf = await runProgram("postconf", ["-c", dir, "-n"], run);
        let stderr = `${check.stderr}${conf.stderr}`.trim();
        if (stderr !== "" && check.code === 0 && conf.code === 0) {
          stderr = withoutQueueChurn(stderr, await queueDirectory(dir, run));
        }
        if (check.code !== 0 || conf.code !== 0 || stderr !== "") {
          const log = readFrom(o.paths.postfixLog, logSize).trim();
          const said = [stderr, log].filter(Boolean).join("\n") || (await startupFatal(dir, run));
          throw new Error(`postfix check failed (exit ${check.code}): ${said || "no reason given"}`);
        }
      },
    },
    {
      name: "postmap probe",
      async check(staged) {
        for (const name of MAP_NAMES) {
          const map = `sqlite:${staged(o.paths.postfixMap(name))}`;
          const r = await runProgram("postmap", ["-c", staged(o.paths.postfixDir), "-q", PROBE_KEY[name], map], run);
          // Exit 1 with no output means "not found", which is fine for a probe key.
          if ((r.code !== 0 && r.code !== 1) || r.stderr.trim() !== "") {
            throw new Error(`postmap probe of ${name} failed (exit ${r.code}): ${r.stderr.trim()}`);
          }
        }
      },
    },
  ];
}

/** The live queue's directory under this config (asked only when `postfix check` said something). */
async function queueDirectory(dir: string, run: { wrap: readonly string[]; timeoutMs: number }): Promise<string> {
  const r = await runProgram("postconf", ["-c", dir, "-h", "queue_directory"], run);
  return r.code === 0 ? r.stdout.trim() : "/var/spool/postfix";
}

/** What a Postfix program says when it loads this config dir (empty when it starts cleanly). */
async function startupFatal(dir: string, run: { wrap: readonly string[]; timeoutMs: number }): Promise<string> {
  // A lookup in a table with no file (static:): loads and checks main.cf, touches nothing.
  const r = await runProgram("postmap", ["-c", dir, "-q", "netserva-check", "static:ok"], run);
  return r.code === 0 ? "" : r.stderr.trim();
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** What was appended to a log after `offset` (at most 64 KiB). */
function readFrom(path: string, offset: number): string {
  try {
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(Math.min(64 * 1024, Math.max(0, sizeOf(path) - offset)));
      const n = readSync(fd, buf, 0, buf.length, offset);
      return buf.subarray(0, n).toString("utf8");
    } finally {
      closeSync(fd);
    }
  } catch {
    return "";
  }
}
