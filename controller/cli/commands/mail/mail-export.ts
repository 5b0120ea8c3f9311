// mail:export <vnode>: the vnode's domains, mailboxes (with password hashes) and aliases in the
// import format. The output holds password hashes: --output writes it to a file with mode 0600.
import { closeSync, constants, openSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { NetservaError, invalid } from "../../../../common/errors.ts";
import { collectExport, exportCsv, exportJson } from "../../../mail-import/export.ts";
import { mailboxSecrets } from "../../../mail-import/mailbox-secrets.ts";
import { audited } from "../../../audit/audit.ts";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { loggable, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";

interface Flags extends HomeFlag {
  format?: string;
  json?: boolean;
  output?: string;
}

export function registerMailExport(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("mail:export <vnode>")
      .description("export a vnode's mail domains, mailboxes and aliases (re-imports with mail:import)")
      .option("--format <format>", "json (default) or csv")
      .option("--json", "same as --format json")
      .option("--output <file>", "write to this file (mode 0600) instead of stdout"),
  ).action(async (vnode: string, flags: Flags) => {
    const format = flags.json ? "json" : (flags.format ?? "json");
    if (format !== "json" && format !== "csv")
      throw invalid("format", `'${format.slice(0, 24)}' is not one of json, csv`);
    const text = await withMail(ctx, flags, async (session) => {
      // The export holds password hashes: who took one, and where to, goes in the command log.
      const entry = {
        actor: ctx.actor,
        command: "mail:export",
        vnodeName: loggable(vnode, 63),
        args: { format, output: flags.output === undefined ? "stdout" : loggable(flags.output) },
      };
      return audited(session.db.em(), entry, async () => {
        const doc = await collectExport(session.services, vnode, (v) => mailboxSecrets(session.db.em(), v));
        ctx.io.err(`exported ${doc.rows.length} rows of ${doc.vnode}\n`);
        return format === "json" ? exportJson(doc) : exportCsv(doc);
      });
    });
    if (flags.output === undefined) ctx.io.out(text);
    else writeExclusive(resolve(ctx.io.cwd ?? "", flags.output), text);
  });
}

/** Creates `path` for the export only if nothing is there: never over an existing file, never
 *  through a symbolic link (O_EXCL refuses both), mode 0600 from the first byte. */
function writeExclusive(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (error) {
    const code = error instanceof Error && "code" in error ? String(error.code) : "";
    if (code === "EEXIST" || code === "ELOOP")
      throw new NetservaError(
        "already_exists",
        `output: ${path} exists: the export holds password hashes and is never written over an existing file or link; choose a new name`,
        { field: "output" },
      );
    throw invalid("output", `cannot create ${path}: ${code || String(error)}`);
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
