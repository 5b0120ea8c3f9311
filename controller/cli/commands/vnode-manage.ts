// `vnode manage <vnode>`: the explicit switch of an unmanaged vnode (mail configuration we did
// not write was found) to managed. It says which files the first apply overwrites (the agent
// keeps the originals aside), asks unless --yes, switches the agent, then pushes the whole state.
import type { Command } from "commander";
import { NetservaError } from "../../../common/errors.ts";
import { audited } from "../../audit/audit.ts";
import { commandDeliver } from "../command-deliver.ts";
import { setVnodeManagement } from "../../fleet/vnode-management.ts";
import type { CliContext } from "../cli-context.ts";
import { reportDelivery } from "../delivery-report.ts";

async function confirm(ctx: CliContext, question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!ctx.io.confirm)
    throw new NetservaError(
      "usage",
      "vnode manage overwrites the vnode's mail configuration and there is no terminal to ask on: pass --yes to confirm (or --dry-run to see what it would overwrite)",
    );
  if (!(await ctx.io.confirm(`${question} [y/N] `)))
    throw new NetservaError("invalid_argument", "confirmation: not confirmed; nothing was changed", {
      field: "confirmation",
    });
}

export function registerVnodeManage(program: Command, ctx: CliContext): void {
  const vnode = program.commands.find((c) => c.name() === "vnode");
  if (!vnode) throw new Error("register vnode commands first");
  vnode
    .command("manage <name>")
    .description("switch an unmanaged vnode to managed: its mail configuration is overwritten by ours")
    .option("--dry-run", "only say what would be overwritten")
    .option("--yes", "do not ask")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: { dryRun?: boolean; yes?: boolean; home?: string }) => {
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const plan = await setVnodeManagement(db, paths, {
          vnode: name,
          managed: true,
          dryRun: true,
          actor: ctx.actor,
        });
        if (plan.managed) {
          ctx.io.out(`vnode ${name} is managed already\n`);
          return;
        }
        const files = plan.overwrites;
        ctx.io.out(
          `vnode ${name} is unmanaged: ${plan.reason}\n` +
            (files.length
              ? `switching overwrites (originals kept aside in ${plan.keptAsideDir}):\n${files.map((f) => `  ${f}\n`).join("")}`
              : "switching overwrites no existing file\n") +
            "and serves only the domains, mailboxes and aliases the controller holds for it (`vnode adopt` imports NetServa's first)\n",
        );
        if (options.dryRun) return;
        await confirm(ctx, `overwrite the mail configuration of ${name}?`, options.yes);
        const em = db.em();
        await audited(em, { actor: ctx.actor, command: "vnode manage", vnodeName: name.slice(0, 63) }, () =>
          setVnodeManagement(db, paths, { vnode: name, managed: true, dryRun: false, actor: ctx.actor }),
        );
        ctx.io.out(`vnode ${name} is managed\n`);
        const outcome = await commandDeliver(ctx, db, paths).deliver({ vnode: name, actor: ctx.actor });
        reportDelivery(ctx, name, outcome, { showDiff: false });
      } finally {
        await db.close();
      }
    });
}
