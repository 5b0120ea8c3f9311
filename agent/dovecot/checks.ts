// Validators for a staged Dovecot config: `doveconf -n` (non-zero exit = refused) and `sievec`
// on the global before-script (a script that does not compile would fail every delivery).
import type { Validator } from "../apply/apply-config-files.ts";
import type { VnodePaths } from "../paths.ts";
import { runProgram } from "../process.ts";

export function dovecotValidators(paths: VnodePaths, wrap: readonly string[] = []): Validator[] {
  const run = { wrap, timeoutMs: 30_000 };
  return [
    {
      name: "doveconf",
      async check(staged) {
        const r = await runProgram("doveconf", ["-n", "-c", staged(paths.dovecotConf)], run);
        if (r.code !== 0) throw new Error(`doveconf failed (exit ${r.code}): ${r.stderr.trim()}`);
      },
    },
    {
      name: "sievec",
      async check(staged) {
        const r = await runProgram("sievec", ["-c", staged(paths.dovecotConf), staged(paths.dovecotSieveBefore)], run);
        if (r.code !== 0) throw new Error(`sievec failed (exit ${r.code}): ${r.stderr.trim()}`);
      },
    },
  ];
}
