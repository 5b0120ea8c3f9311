// delvalias <vnode> <source>: delete an alias. Asks first, unless --yes.
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { confirmOrStop, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  yes?: boolean;
  dryRun?: boolean;
}

export function registerDelvalias(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("delvalias <vnode> <source>")
      .description("delete an alias")
      .option("--yes", "do not ask")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, source: string, flags: Flags) => {
    await withMail(ctx, flags, async (session) => {
      const preview = await session.services.aliases.remove({ vnode, source, dryRun: true });
      const what = `deleted alias ${preview.value.source} -> ${preview.value.targets.join(",")}`;
      if (flags.dryRun) return reportMutation(ctx, session, preview, what);
      await confirmOrStop(
        ctx,
        `delete alias ${preview.value.source} (to ${preview.value.targets.join(", ")}) on ${preview.vnode}?`,
        flags.yes,
        "delvalias",
      );
      await reportMutation(ctx, session, await session.services.aliases.remove({ vnode, source, dryRun: false }), what);
    });
  });
}
