// shvmail <vnode> [email|@domain]: every mailbox of the vnode, those of one domain, or one
// mailbox in detail (quota and usage, active, the aliases that point at it).
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { parseFormat } from "../../format.ts";
import { withMail } from "../../mail-context.ts";
import { withListFormat } from "./flags.ts";
import type { ListFlags } from "./flags.ts";
import { mailboxDetail, mailboxTable } from "./views.ts";

export function registerShvmail(program: Command, ctx: CliContext): void {
  withListFormat(
    program
      .command("shvmail <vnode> [target]")
      .description(
        "show mailboxes: all of the vnode, of one domain (@example.com or example.com), or one address in detail",
      ),
  ).action(async (vnode: string, target: string | undefined, flags: ListFlags) => {
    const format = parseFormat(flags.format, flags.json);
    await withMail(ctx, flags, async ({ services }) => {
      if (target !== undefined && target.includes("@") && !target.startsWith("@")) {
        ctx.io.out(mailboxDetail(await services.mailboxes.get(vnode, target), format));
        return;
      }
      ctx.io.out(mailboxTable(await services.mailboxes.list(vnode, target), format));
    });
  });
}
