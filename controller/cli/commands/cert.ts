// `cert issue-monitor NAME --out DIR`: a client certificate for Prometheus (monitor role).
import type { Command } from "commander";
import { invalid } from "../../../common/errors.ts";
import { audited } from "../../audit/audit.ts";
import { issueMonitorCertificate } from "../../pki/issue-monitor.ts";
import type { CliContext } from "../cli-context.ts";

export function registerCert(program: Command, ctx: CliContext): void {
  const cert = program.command("cert").description("certificates from the controller's CA for other parties");
  cert
    .command("issue-monitor <name>")
    .description("a monitor-role client certificate for scraping the agents' /metrics (Prometheus tls_config)")
    .requiredOption("--out <dir>", "write <name>.crt, <name>.key (0600) and ca.crt here")
    .option("--days <n>", "validity in days", "365")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: { out: string; days: string; home?: string }) => {
      const days = Number(options.days);
      if (!Number.isInteger(days) || days < 1 || days > 3650) throw invalid("days", "must be 1..3650");
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const issued = await audited(
          em,
          { actor: ctx.actor, command: "cert issue-monitor", args: { name, out: options.out, days } },
          () => issueMonitorCertificate(em, paths, { name, outDir: options.out, validDays: days }),
        );
        ctx.io.out(
          `monitor certificate ${issued.certFile} (key ${issued.keyFile}, CA ${issued.caFile}), valid until ${issued.notAfter.toISOString()}\n`,
        );
      } finally {
        await db.close();
      }
    });
}
