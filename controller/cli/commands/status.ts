import type { Command } from "commander";
import { fleetStatus } from "../../fleet/fleet-status.ts";
import type { CliContext } from "../cli-context.ts";
import { formatRows, parseFormat } from "../format.ts";

export function registerStatus(program: Command, ctx: CliContext): void {
  program
    .command("status")
    .description("each vnode: connected, last health, agent version, generation, certificate expiry")
    .option("--json", "JSON output (same as --format json)")
    .option("--format <format>", "table | json | csv")
    .option("--home <dir>", "controller home")
    .action(async (options: { json?: boolean; format?: string; home?: string }) => {
      const format = parseFormat(options.format, options.json);
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const all = await fleetStatus(db.em());
        // A table shows the refusal as one cell; JSON and CSV keep the fields apart.
        const rows =
          format === "table"
            ? all.map((r) => ({
                ...r,
                refused: r.refused === null ? null : `generation ${r.refusedGeneration}: ${r.refused}`,
              }))
            : all;
        ctx.io.out(
          formatRows(
            rows,
            [
              "vnode",
              "address",
              "status",
              "connected",
              "lastHealthAt",
              "agentVersion",
              "generation",
              "appliedGeneration",
              "certificateNotAfter",
              ...(rows.some((r) => r.refused !== null) ? (["refused"] as const) : []),
            ],
            format,
          ),
        );
      } finally {
        await db.close();
      }
    });
}
