// Flag parsing shared by the mail commands. Only the shape of a flag is checked here (a count is
// a whole number, a scheme is one of two names); what the value means is the services' business.
import type { Command } from "commander";
import { NetservaError, invalid } from "../../../../common/errors.ts";
import type { PasswordScheme } from "../../../mail/mail-api.ts";
import type { CliContext } from "../../cli-context.ts";

export interface HomeFlag {
  home?: string;
}

export interface ListFlags extends HomeFlag {
  format?: string;
  json?: boolean;
}

/** `--home`, the common option of every command. */
export function withHome(command: Command): Command {
  return command.option("--home <dir>", "controller home");
}

/** `--format` and `--json`, the options of every listing. */
export function withListFormat(command: Command): Command {
  return withHome(
    command.option("--format <format>", "table | json | csv").option("--json", "JSON output (same as --format json)"),
  );
}

/** A count such as --max-mailboxes: digits only (its bounds are the service's rule). */
export function parseCount(value: string | undefined, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(value))
    throw invalid(field, `'${value.slice(0, 24)}' is not a whole number (0 = unlimited)`);
  return Number(value);
}

export function parseScheme(value: string | undefined): PasswordScheme | undefined {
  if (value === undefined) return undefined;
  const scheme = value.toUpperCase();
  if (scheme !== "SHA512-CRYPT" && scheme !== "ARGON2ID")
    throw invalid("scheme", `'${value.slice(0, 24)}' is not a password scheme; use sha512-crypt or argon2id`);
  return scheme;
}

/** The password an operator pipes in: exactly one trailing newline (LF or CRLF) is dropped. */
export async function readPasswordStdin(ctx: CliContext): Promise<string> {
  const text = await ctx.io.readStdin();
  return text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text;
}

export function usage(message: string): NetservaError {
  return new NetservaError("usage", message);
}

/**
 * Destructive commands ask first. Without --yes and without a terminal to ask on, refuse as a
 * usage error; a "no" changes nothing and exits 1.
 */
export async function confirmOrStop(
  ctx: CliContext,
  question: string,
  yes: boolean | undefined,
  command: string,
): Promise<void> {
  if (yes) return;
  if (!ctx.io.confirm)
    throw usage(
      `${command} deletes data and there is no terminal to ask on: pass --yes to confirm (or --dry-run to see what it would do)`,
    );
  if (!(await ctx.io.confirm(`${question} [y/N] `))) {
    throw new NetservaError("invalid_argument", "confirmation: not confirmed; nothing was changed", {
      field: "confirmation",
    });
  }
}

/** A value for the command log: control characters (which a jsonb or text column may refuse) replaced, length capped. */
export function loggable(value: string, max = 300): string {
  return value.slice(0, max).replace(/\p{Cc}/gu, "\uFFFD");
}
