import type { Command } from "commander";
import { leaseReport } from "../../fleet/lease-report.ts";
import { LEASE_TTL_MS } from "../../fleet/lease-keeper.ts";
import type { CliContext } from "../cli-context.ts";
import { formatRows, parseFormat } from "../format.ts";

export function registerLeases(program: Command, ctx: CliContext): void {
  program
    .command("leases")
    .description("several controllers on PostgreSQL: which controller drives each vnode, its lease epoch and expiry")
    .option("--json", "JSON output (same as --format json)")
    .option("--format <format>", "table | json | csv")
    .option("--home <dir>", "controller home")
    .action(async (options: { json?: boolean; format?: string; home?: string }) => {
      const format = parseFormat(options.format, options.json);
      const db = await ctx.openDb(ctx.paths(options.home));
      try {
        if (db.kind !== "postgresql" && format === "table") {
          ctx.io.out("the embedded database has one controller: it drives every vnode, no leases\n");
          return;
        }
        const rows = await leaseReport(db.em(), LEASE_TTL_MS / 1000);
        ctx.io.out(formatRows(rows, ["vnode", "controller", "epoch", "expiresInSeconds", "controllerAlive"], format));
      } finally {
        await db.close();
      }
    });
}
