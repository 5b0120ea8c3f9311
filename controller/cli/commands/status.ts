import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { inspectCertificate } from "../../../common/pki/inspect.ts";
import { controllerRenewAt } from "../../pki/controller-certificate.ts";
import { fleetStatus } from "../../fleet/fleet-status.ts";
import type { CliContext } from "../cli-context.ts";
import { formatRows, parseFormat } from "../format.ts";

/** The controller's own certificates above the vnode table: those the running daemon presents,
 *  else the one in the home. JSON and CSV stay one row per vnode (a stable shape). */
function controllerCertificateLines(ctx: CliContext, certFile: string): string {
  const presented = ctx.daemon?.presentedCertificates?.();
  const line = (label: string, pem: string): string => {
    const info = inspectCertificate(pem);
    return (
      `${label} certificate ${info.serialHex}: valid until ${info.notAfter.toISOString()}` +
      ` (renewed from ${controllerRenewAt(pem).toISOString()})\n`
    );
  };
  try {
    if (!presented) return line("controller", readFileSync(certFile, "utf8"));
    return presented.enrollment === presented.controller
      ? line("controller", presented.controller)
      : line("controller", presented.controller) + line("enrollment", presented.enrollment);
  } catch {
    return "controller certificate: none readable in the home\n";
  }
}

export function registerStatus(program: Command, ctx: CliContext): void {
  program
    .command("status")
    .description(
      "each vnode: connected, last health, agent version, generation, certificate expiry, lease holder and epoch",
    )
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
                management:
                  r.management === "unmanaged" ? `unmanaged: ${r.managementReason ?? "reason unknown"}` : r.management,
              }))
            : all;
        if (format === "table") ctx.io.out(controllerCertificateLines(ctx, paths.cert));
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
              ...(all.some((r) => r.management === "unmanaged") ? (["management"] as const) : []),
              // Leases exist with several controllers on PostgreSQL: who drives each vnode.
              ...(all.some((r) => r.leaseEpoch > 0) ? (["holder", "leaseEpoch"] as const) : []),
            ],
            format,
          ),
        );
      } finally {
        await db.close();
      }
    });
}
