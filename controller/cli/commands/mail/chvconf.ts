// chvconf <vnode> <domain> <NAME> [value]: set a domain variable. Secrets (MPWD, DPASS, …) are
// better given with --value-stdin, so they never appear in the process list or shell history.
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { readPasswordStdin, usage, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  valueStdin?: boolean;
  dryRun?: boolean;
}

export function registerChvconf(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("chvconf <vnode> <domain> <name> [value]")
      .description("set a mail domain variable (MQUOTA sets the default quota; secrets are stored hashed)")
      .option("--value-stdin", "read the value from stdin (one trailing newline dropped)")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, domain: string, name: string, value: string | undefined, flags: Flags) => {
    if (value !== undefined && flags.valueStdin)
      throw usage("give the value as an argument or with --value-stdin, not both");
    if (value === undefined && !flags.valueStdin) throw usage("chvconf needs a value (or --value-stdin)");
    const text = value ?? (await readPasswordStdin(ctx));
    await withMail(ctx, flags, async (session) => {
      const result = await session.services.vconfs.set({ vnode, domain, name, value: text, dryRun: flags.dryRun });
      const v = result.value;
      await reportMutation(ctx, session, result, `set ${v.name} = ${v.value} for ${v.domain}`);
    });
  });
}
