// shvmaildomain <vnode> [domain]: the mail domains of a vnode, or one of them.
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { parseFormat } from "../../format.ts";
import { withMail } from "../../mail-context.ts";
import { withListFormat } from "./flags.ts";
import type { ListFlags } from "./flags.ts";
import { domainTable } from "./views.ts";

export function registerShvmaildomain(program: Command, ctx: CliContext): void {
  withListFormat(
    program.command("shvmaildomain <vnode> [domain]").description("show the mail domains of a vnode, or one of them"),
  ).action(async (vnode: string, domain: string | undefined, flags: ListFlags) => {
    const format = parseFormat(flags.format, flags.json);
    await withMail(ctx, flags, async ({ services }) => {
      if (domain !== undefined) {
        const view = await services.domains.get(vnode, domain);
        ctx.io.out(format === "json" ? JSON.stringify(view, null, 2) + "\n" : domainTable([view], format));
        return;
      }
      ctx.io.out(domainTable(await services.domains.list(vnode), format));
    });
  });
}
