// `rspamadm configtest` over a candidate LOCAL_CONFDIR: the apply pipeline writes the new local.d
// aside, checks it here, and only then swaps it in. configtest checks syntax, not meaning: the
// integration tests check behaviour.
import { runProgram } from "../process.ts";
import type { ValidationResult } from "../sc/managed-daemon.ts";
import type { RspamdPaths } from "./paths.ts";
import { rspamdVars } from "./paths.ts";

export interface RspamdValidateOptions {
  readonly paths: RspamdPaths;
  /** Directory holding the candidate local.d/ (default: the live one). */
  readonly confDir?: string;
  readonly mainConfig?: string;
  readonly rspamadm?: string;
  readonly timeoutMs?: number;
}

export async function validateRspamdConfig(o: RspamdValidateOptions): Promise<ValidationResult> {
  // --var options must come before the subcommand, or rspamadm ignores them.
  const args = [...rspamdVars(o.paths, o.confDir), "configtest", "-c", o.mainConfig ?? "/etc/rspamd/rspamd.conf"];
  const r = await runProgram(o.rspamadm ?? "rspamadm", args, { timeoutMs: o.timeoutMs ?? 30_000, maxBuffer: 1 << 20 });
  return { ok: r.code === 0 && /syntax OK/.test(r.stdout), output: `${r.stderr}${r.stdout}`.trim() };
}
