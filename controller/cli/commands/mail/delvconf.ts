// delvconf <vnode> <domain> <NAME>: remove a domain variable.
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  dryRun?: boolean;
}

export function registerDelvconf(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("delvconf <vnode> <domain> <name>")
      .description("remove a mail domain variable")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, domain: string, name: string, flags: Flags) => {
    await withMail(ctx, flags, async (session) => {
      const result = await session.services.vconfs.remove({ vnode, domain, name, dryRun: flags.dryRun });
      await reportMutation(ctx, session, result, `removed ${result.value.name} from ${result.value.domain}`);
    });
  });
}
