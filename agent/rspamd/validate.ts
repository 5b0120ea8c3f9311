// `rspamadm configtest` over a candidate LOCAL_CONFDIR: the apply pipeline writes the new local.d
// aside, checks it here, and only then swaps it in. configtest checks syntax, not meaning: the
// integration tests check behaviour.
import { execFile } from "node:child_process";
import type { ValidationResult } from "./daemon-process.ts";
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

export function validateRspamdConfig(o: RspamdValidateOptions): Promise<ValidationResult> {
  // --var options must come before the subcommand, or rspamadm ignores them.
  const args = [...rspamdVars(o.paths, o.confDir), "configtest", "-c", o.mainConfig ?? "/etc/rspamd/rspamd.conf"];
  return new Promise((resolve) => {
    execFile(
      o.rspamadm ?? "rspamadm",
      args,
      { timeout: o.timeoutMs ?? 30_000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        const output = `${stderr}${stdout}`.trim();
        resolve({ ok: err === null && /syntax OK/.test(stdout), output });
      },
    );
  });
}
