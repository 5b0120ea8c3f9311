// mail:import <file.csv|file.json>: bulk domains, mailboxes and aliases (format: README, "Bulk
// import and export"). Refused rows are reported (row, field, reason) and exit 1; the accepted
// rows are stored, one transaction per batch, unless --dry-run.
import { readFileSync, statSync } from "node:fs";
import type { Command } from "commander";
import { NetservaError, invalid } from "../../../../common/errors.ts";
import { createProgress } from "../../../mail-import/progress.ts";
import { readImportFile } from "../../../mail-import/rows.ts";
import { runImport } from "../../../mail-import/run-import.ts";
import type { ImportReport } from "../../../mail-import/run-import.ts";
import { audited } from "../../../audit/audit.ts";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { loggable, parseCount, usage, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";

interface Flags extends HomeFlag {
  vnode?: string;
  dryRun?: boolean;
  batch?: string;
  format?: string;
  inputFormat?: string;
  skipDnsCheck?: boolean;
}

const MAX_FILE_BYTES = 512 * 1024 * 1024;

async function readInput(
  ctx: CliContext,
  file: string,
  inputFormat: string | undefined,
): Promise<{ text: string; format: "csv" | "json" }> {
  const kind = inputFormat ?? (/\.csv$/i.test(file) ? "csv" : /\.json$/i.test(file) ? "json" : undefined);
  if (kind !== "csv" && kind !== "json")
    throw usage(
      `cannot tell the format of ${JSON.stringify(file.slice(0, 200))}: name it .csv or .json, or pass --input-format csv|json`,
    );
  if (file === "-") return { text: await ctx.io.readStdin(), format: kind };
  try {
    const size = statSync(file).size;
    if (size > MAX_FILE_BYTES)
      throw invalid("file", `is ${size} bytes; import at most ${MAX_FILE_BYTES} bytes at a time`);
    return { text: readFileSync(file, "utf8"), format: kind };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      throw usage(`no such file: ${JSON.stringify(file.slice(0, 200))}`);
    throw error;
  }
}

function printReport(ctx: CliContext, report: ImportReport, json: boolean): void {
  for (const r of report.refused) ctx.io.err(`row ${r.row}: ${r.field}: ${r.reason}\n`);
  if (json) {
    ctx.io.out(JSON.stringify(report, null, 2) + "\n");
    return;
  }
  const { domain, mailbox, alias } = report.accepted;
  const accepted = domain + mailbox + alias;
  const verb = report.dryRun ? "would import" : "imported";
  ctx.io.out(
    `${verb} ${accepted} of ${report.rows} rows (${domain} domains, ${mailbox} mailboxes, ${alias} aliases); refused ${report.refused.length}${report.dryRun ? "; dry run: nothing was changed" : ""}\n`,
  );
  if (report.passwords.length) {
    ctx.io.out("generated passwords (shown only this once):\n");
    for (const p of report.passwords) ctx.io.out(`${p.address}\t${p.password}\n`);
  }
}

export function registerMailImport(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("mail:import <file>")
      .description("import domains, mailboxes and aliases from CSV or JSON (- reads stdin)")
      .option("--vnode <vnode>", "put every row on this vnode (rows may name their own otherwise)")
      .option("--batch <n>", "rows per transaction", "500")
      .option("--input-format <format>", "csv | json (default: from the file name)")
      .option("--format <format>", "report as table (default) or json")
      .option("--skip-dns-check", "add domains that no DNS zone holds (recorded in the command log)")
      .option("--dry-run", "check every row and report; change nothing"),
  ).action(async (file: string, flags: Flags) => {
    const batchSize = parseCount(flags.batch, "batch") ?? 500;
    if (batchSize < 1 || batchSize > 10_000) throw invalid("batch", "must be 1 to 10000 rows");
    const format = flags.format ?? "table";
    if (format !== "table" && format !== "json")
      throw invalid("format", `'${format.slice(0, 24)}' is not one of table, json`);
    const input = await readInput(ctx, file, flags.inputFormat);
    await withMail(ctx, flags, async (session) => {
      // The import as a whole is one command log row (each batch's changes have their own).
      const entry = {
        actor: ctx.actor,
        command: "mail:import",
        vnodeName: flags.vnode === undefined ? null : loggable(flags.vnode, 63),
        args: { file: loggable(file), format: input.format, dryRun: Boolean(flags.dryRun), batch: batchSize },
      };
      await audited(session.db.em(), entry, async () => {
        const parsed = readImportFile(input.text, input.format);
        const progress = createProgress({
          total: parsed.rows.length,
          label: "rows",
          write: ctx.io.err,
          enabled: ctx.io.isTTY,
        });
        let report: ImportReport;
        try {
          report = await runImport(parsed, {
            em: session.db.em(),
            servicesFor: session.servicesFor,
            vnode: flags.vnode,
            dryRun: Boolean(flags.dryRun),
            batchSize,
            skipDnsCheck: Boolean(flags.skipDnsCheck),
            onProgress: (done) => progress.update(done),
            onBatch: async (merged) => {
              progress.clear();
              for (const result of merged) await session.push(result);
            },
          });
        } finally {
          progress.clear();
        }
        printReport(ctx, report, format === "json");
        const n = report.refused.length;
        const accepted = report.accepted.domain + report.accepted.mailbox + report.accepted.alias;
        if (n) {
          const stored = report.dryRun
            ? "nothing was changed (dry run)"
            : accepted === 1
              ? "the other row was stored"
              : accepted
                ? `the other ${accepted} were stored`
                : "nothing was stored";
          throw new NetservaError(
            "invalid_argument",
            `${n} row${n === 1 ? " was" : "s were"} refused (listed above); ${stored}`,
          );
        }
      });
    });
  });
}
