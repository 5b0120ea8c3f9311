// addvmail <vnode> <email>: a new mailbox. The password is generated (or read from stdin with
// --password-stdin) by the service and printed here once; only its hash is stored.
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { parseScheme, readPasswordStdin, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  quota?: string;
  name?: string;
  passwordStdin?: boolean;
  scheme?: string;
  catchAll?: boolean;
  dryRun?: boolean;
}

export function registerAddvmail(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("addvmail <vnode> <email>")
      .description("add a mailbox; prints its generated password once")
      .option("--quota <size>", "mailbox quota, e.g. 2G (default: the domain's default quota)")
      .option("--name <name>", "display name")
      .option("--password-stdin", "read the password from stdin instead of generating one")
      .option("--scheme <scheme>", "password hash: sha512-crypt (default) or argon2id")
      .option("--catch-all", "admin@ only: also make @domain a catch-all to it")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, email: string, flags: Flags) => {
    const scheme = parseScheme(flags.scheme);
    const password = flags.passwordStdin ? await readPasswordStdin(ctx) : undefined;
    await withMail(ctx, flags, async (session) => {
      // The agent connection opens while the password is hashed and the row committed.
      // NETSERVA_MAIL_CONNECT_AHEAD=0 turns that off (scripts/bench-apply --ab compares both).
      if (ctx.io.env["NETSERVA_MAIL_CONNECT_AHEAD"] !== "0") session.warm(vnode);
      const result = await session.services.mailboxes.add({
        vnode,
        address: email,
        quota: flags.quota,
        name: flags.name,
        password,
        scheme,
        catchAll: flags.catchAll,
        dryRun: flags.dryRun,
      });
      const { mailbox } = result.value;
      const shown = result.value.password !== undefined && !flags.passwordStdin;
      const what = `added mailbox ${mailbox.address}${flags.catchAll ? ` with catch-all @${mailbox.ascii.split("@")[1] ?? ""}` : ""}`;
      await reportMutation(ctx, session, result, what, shown ? [`password: ${result.value.password}`] : []);
      if (shown && !result.dryRun) ctx.io.err("the password is shown only this once: store it now\n");
    });
  });
}
