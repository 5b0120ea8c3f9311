// addvalias <vnode> <source> <target[,target…]>: forward an address (or @domain, a catch-all).
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  dryRun?: boolean;
}

export function registerAddvalias(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("addvalias <vnode> <source> <targets>")
      .description(
        "add an alias: source (user@domain or @domain for a catch-all) to one or more comma-separated targets",
      )
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, source: string, targets: string, flags: Flags) => {
    await withMail(ctx, flags, async (session) => {
      const result = await session.services.aliases.add({ vnode, source, targets, dryRun: flags.dryRun });
      await reportMutation(
        ctx,
        session,
        result,
        `added alias ${result.value.source} -> ${result.value.targets.join(",")}`,
      );
    });
  });
}
