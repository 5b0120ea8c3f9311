// delvmaildomain <vnode> <domain>: stop hosting a domain. The service refuses while it has
// active mailboxes (and says how many and what to do). Asks first, unless --yes.
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { confirmOrStop, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  keepMaildir?: boolean;
  yes?: boolean;
  dryRun?: boolean;
}

export function registerDelvmaildomain(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("delvmaildomain <vnode> <domain>")
      .description("delete a mail domain (refused while it has active mailboxes)")
      .option("--keep-maildir", "leave the maildirs of its (inactive) mailboxes on the vnode")
      .option("--yes", "do not ask")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, domain: string, flags: Flags) => {
    await withMail(ctx, flags, async (session) => {
      const preview = await session.services.domains.remove({
        vnode,
        domain,
        keepMaildir: flags.keepMaildir,
        dryRun: true,
      });
      const view = preview.value;
      const what = `deleted mail domain ${view.domain}`;
      if (flags.dryRun) return reportMutation(ctx, session, preview, what);
      const contents = `${view.mailboxes} mailbox${view.mailboxes === 1 ? "" : "es"}, ${view.aliases} alias${view.aliases === 1 ? "" : "es"}`;
      await confirmOrStop(
        ctx,
        `delete mail domain ${view.domain} on ${preview.vnode} (${contents})?`,
        flags.yes,
        "delvmaildomain",
      );
      await reportMutation(
        ctx,
        session,
        await session.services.domains.remove({ vnode, domain, keepMaildir: flags.keepMaildir, dryRun: false }),
        what,
      );
    });
  });
}
