// shvconf <vnode> <domain>: the domain's NetServa variables (secrets shown as a hash marker).
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { parseFormat } from "../../format.ts";
import { withMail } from "../../mail-context.ts";
import { withListFormat } from "./flags.ts";
import type { ListFlags } from "./flags.ts";
import { vconfTable } from "./views.ts";

export function registerShvconf(program: Command, ctx: CliContext): void {
  withListFormat(
    program.command("shvconf <vnode> <domain>").description("show a mail domain's variables (MQUOTA, MPWD, …)"),
  ).action(async (vnode: string, domain: string, flags: ListFlags) => {
    const format = parseFormat(flags.format, flags.json);
    await withMail(ctx, flags, async ({ services }) => {
      ctx.io.out(vconfTable(await services.vconfs.list(vnode, domain), format));
    });
  });
}
