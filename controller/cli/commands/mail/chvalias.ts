// chvalias <vnode> <source>: replace an alias's targets or switch it on or off.
import type { Command } from "commander";
import { parseActiveFlag } from "../../../../common/validation/names.ts";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { usage, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  targets?: string;
  active?: string;
  dryRun?: boolean;
}

export function registerChvalias(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("chvalias <vnode> <source>")
      .description("change an alias: its targets or whether it is active")
      .option("--targets <targets>", "the new comma-separated targets (replace the old ones)")
      .option("--active <0|1>", "1 to enable, 0 to disable the alias")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, source: string, flags: Flags) => {
    const active = flags.active === undefined ? undefined : parseActiveFlag(flags.active, "active");
    if (flags.targets === undefined && active === undefined)
      throw usage("nothing to change: give --targets or --active");
    await withMail(ctx, flags, async (session) => {
      const result = await session.services.aliases.change({
        vnode,
        source,
        targets: flags.targets,
        active,
        dryRun: flags.dryRun,
      });
      const alias = result.value;
      await reportMutation(
        ctx,
        session,
        result,
        `changed alias ${alias.source} -> ${alias.targets.join(",")}${alias.active ? "" : " (inactive)"}`,
      );
    });
  });
}
