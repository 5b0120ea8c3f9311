// mail:export <vnode>: the vnode's domains, mailboxes (with password hashes) and aliases in the
// import format. The output holds password hashes: --output writes it to a file with mode 0600.
import { chmodSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { invalid } from "../../../../common/errors.ts";
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
    else {
      writeFileSync(flags.output, text, { mode: 0o600 });
      chmodSync(flags.output, 0o600); // an existing file keeps its mode otherwise
    }
  });
}
