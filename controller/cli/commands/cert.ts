// `cert issue-monitor NAME --out DIR`: a client certificate for Prometheus (monitor role);
// `cert list` and `cert revoke SERIAL`: every certificate the CA issued; `cert renew-controller`:
// a new certificate for the controller itself, swapped into a running `serve`.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { invalid, NetservaError } from "../../../common/errors.ts";
import { inspectCertificate } from "../../../common/pki/inspect.ts";
import { listCertificates, revokeCertificate } from "../../pki/certificate-ledger.ts";
import { formatRows, parseFormat } from "../format.ts";
import { audited } from "../../audit/audit.ts";
import { issueMonitorCertificate } from "../../pki/issue-monitor.ts";
import { renewControllerIdentity } from "../../pki/controller-certificate.ts";
import { readControllerConfig } from "../../home/controller-config.ts";
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

  cert
    .command("renew-controller")
    .description(
      "a new key and certificate for the controller now (serve also renews by itself when a third of the lifetime is left)",
    )
    .option("--home <dir>", "controller home")
    .action(async (options: { home?: string }) => {
      const paths = ctx.paths(options.home);
      const renewInDaemon = ctx.daemon?.renewControllerCertificate;
      const config = readControllerConfig(paths.config);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const issued = await audited(em, { actor: ctx.actor, command: "cert renew-controller" }, () =>
          renewInDaemon
            ? renewInDaemon()
            : renewControllerIdentity(em, paths, {
                validSeconds: config.controllerCertificateSeconds,
                name: config.name,
              }),
        );
        ctx.io.out(
          `controller certificate ${issued.serialHex} valid until ${issued.notAfter.toISOString()}; ` +
            (renewInDaemon
              ? "the running serve presents it to new connections now\n"
              : "serve takes it up when it starts or at its next certificate check\n"),
        );
      } finally {
        await db.close();
      }
    });

  cert
    .command("list")
    .description("certificates the CA issued (agents, controller, monitors) that have not expired")
    .option("--role <role>", "only agent, controller or monitor")
    .option("--all", "also expired certificates")
    .option("--json", "JSON output (same as --format json)")
    .option("--format <format>", "table | json | csv")
    .option("--home <dir>", "controller home")
    .action(async (options: { role?: string; all?: boolean; json?: boolean; format?: string; home?: string }) => {
      const format = parseFormat(options.format, options.json);
      if (options.role !== undefined && !["agent", "controller", "monitor"].includes(options.role))
        throw invalid("role", "must be agent, controller or monitor");
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const rows = await listCertificates(db.em(), {
          ...(options.role !== undefined ? { role: options.role } : {}),
          all: options.all === true,
        });
        ctx.io.out(
          formatRows(rows, ["serial", "role", "identity", "state", "notBefore", "notAfter", "revokedAt"], format),
        );
      } finally {
        await db.close();
      }
    });

  cert
    .command("revoke <serial>")
    .description("revoke one certificate by serial: agents refuse it at once, open connections included")
    .option("--yes", "do not ask")
    .option("--home <dir>", "controller home")
    .action(async (serial: string, options: { yes?: boolean; home?: string }) => {
      if (!options.yes) {
        if (!ctx.io.confirm)
          throw new NetservaError(
            "usage",
            "cert revoke cannot be undone and there is no terminal to ask on: pass --yes",
          );
        if (!(await ctx.io.confirm(`revoke certificate ${serial}? [y/N] `)))
          throw invalid("confirmation", "not confirmed; nothing was changed");
      }
      const paths = ctx.paths(options.home);
      // The certificates `serve` presents to agents cannot be revoked from under it.
      const presented = ctx.daemon?.presentedCertificates?.();
      const pems = presented ? [presented.controller, presented.enrollment] : [];
      try {
        pems.push(readFileSync(paths.cert, "utf8"));
      } catch {
        /* no certificate in the home */
      }
      const inUse = pems.flatMap((pem) => {
        try {
          return [inspectCertificate(pem).serialHex];
        } catch {
          return [];
        }
      });
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const result = await audited(
          em,
          { actor: ctx.actor, command: "cert revoke", args: { serial: serial.slice(0, 96) } },
          () => revokeCertificate(em, serial, { inUse }),
        );
        ctx.io.out(
          result.changed
            ? `certificate ${result.row.serial} (${result.row.role} ${result.row.identity}) revoked; agents refuse it from the next revocation push (serve pushes within seconds)\n`
            : `certificate ${result.row.serial} (${result.row.role} ${result.row.identity}) was already revoked\n`,
        );
      } finally {
        await db.close();
      }
    });
}
