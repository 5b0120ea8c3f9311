// chvmail <vnode> <email>: change a mailbox's password, quota, state, name or Sieve script.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { invalid } from "../../../../common/errors.ts";
import { parseActiveFlag } from "../../../../common/validation/names.ts";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { parseScheme, readPasswordStdin, usage, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  password?: boolean;
  passwordStdin?: boolean;
  scheme?: string;
  quota?: string;
  active?: string;
  name?: string;
  sieve?: string | false;
  dryRun?: boolean;
}

/** The script file for --sieve (refused by name if unreadable; its content is checked by the service). */
function readSieve(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw invalid(
      "sieve",
      `cannot read ${JSON.stringify(file.slice(0, 200))}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}

export function registerChvmail(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("chvmail <vnode> <email>")
      .description("change a mailbox: password, quota, active, display name, Sieve script")
      .option("--password", "generate a new password and print it once")
      .option("--password-stdin", "read the new password from stdin")
      .option("--scheme <scheme>", "hash for the new password: sha512-crypt or argon2id")
      .option("--quota <size>", "new quota, e.g. 5G (0 = unlimited)")
      .option("--active <0|1>", "1 to enable, 0 to disable the mailbox")
      .option("--name <name>", "display name ('' removes it)")
      .option("--sieve <file>", "install this Sieve script")
      .option("--no-sieve", "remove the Sieve script")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, email: string, flags: Flags) => {
    if (flags.password && flags.passwordStdin) throw usage("give --password (generate) or --password-stdin, not both");
    const scheme = parseScheme(flags.scheme);
    const active = flags.active === undefined ? undefined : parseActiveFlag(flags.active, "active");
    const sieve = flags.sieve === undefined ? undefined : flags.sieve === false ? null : readSieve(flags.sieve);
    const password = flags.passwordStdin ? await readPasswordStdin(ctx) : undefined;
    const nothing =
      !flags.password &&
      password === undefined &&
      flags.quota === undefined &&
      active === undefined &&
      flags.name === undefined &&
      sieve === undefined;
    if (nothing)
      throw usage(
        "nothing to change: give --password, --password-stdin, --quota, --active, --name, --sieve or --no-sieve",
      );
    await withMail(ctx, flags, async (session) => {
      const result = await session.services.mailboxes.change({
        vnode,
        address: email,
        password,
        generatePassword: flags.password,
        scheme,
        quota: flags.quota,
        active,
        name: flags.name,
        sieve,
        dryRun: flags.dryRun,
      });
      const shown = flags.password === true && result.value.password !== undefined;
      await reportMutation(
        ctx,
        session,
        result,
        `changed mailbox ${result.value.mailbox.address}`,
        shown ? [`password: ${result.value.password}`] : [],
      );
      if (shown && !result.dryRun) ctx.io.err("the password is shown only this once: store it now\n");
    });
  });
}
