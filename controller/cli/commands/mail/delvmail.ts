// delvmail <vnode> <email>: delete a mailbox (and its maildir unless --keep-maildir). Aliases
// that only point at it make the service refuse, unless --remove-aliases removes them too.
// Asks first, unless --yes.
import type { Command } from "commander";
import type { MailboxView } from "../../../mail/mail-api.ts";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { confirmOrStop, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  keepMaildir?: boolean;
  removeAliases?: boolean;
  yes?: boolean;
  dryRun?: boolean;
}

function describe(value: { mailbox: MailboxView; removedAliases: string[] }, keepMaildir: boolean | undefined): string {
  const aliases = value.removedAliases.length
    ? ` and alias${value.removedAliases.length === 1 ? "" : "es"} ${value.removedAliases.join(", ")}`
    : "";
  return `deleted mailbox ${value.mailbox.address}${aliases}${keepMaildir ? " (maildir kept)" : ""}`;
}

export function registerDelvmail(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("delvmail <vnode> <email>")
      .description("delete a mailbox and its maildir")
      .option("--keep-maildir", "leave the maildir on the vnode")
      .option("--remove-aliases", "also remove aliases whose only target is this mailbox")
      .option("--yes", "do not ask")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, email: string, flags: Flags) => {
    await withMail(ctx, flags, async (session) => {
      const input = { vnode, address: email, keepMaildir: flags.keepMaildir, removeAliases: flags.removeAliases };
      // A dry run first: refusals (not found, aliases in the way) come before the question.
      const preview = await session.services.mailboxes.remove({ ...input, dryRun: true });
      if (flags.dryRun) {
        await reportMutation(ctx, session, preview, describe(preview.value, flags.keepMaildir));
        return;
      }
      const { mailbox, removedAliases } = preview.value;
      const also = [
        removedAliases.length ? `alias${removedAliases.length === 1 ? "" : "es"} ${removedAliases.join(", ")}` : "",
        flags.keepMaildir ? "" : "its maildir with all its mail",
      ].filter(Boolean);
      await confirmOrStop(
        ctx,
        `delete mailbox ${mailbox.address} on ${preview.vnode}${also.length ? `, and ${also.join(" and ")}` : ""}?`,
        flags.yes,
        "delvmail",
      );
      const result = await session.services.mailboxes.remove({ ...input, dryRun: false });
      await reportMutation(ctx, session, result, describe(result.value, flags.keepMaildir));
    });
  });
}
