import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { invalid } from "../../../common/errors.ts";
import { audited } from "../../audit/audit.ts";
import { commandDeliver } from "../command-deliver.ts";
import { changeVnodeSettings, clearOperatorTls, setOperatorTls } from "../../fleet/vnode-settings.ts";
import type { Vnode } from "../../db/entities/index.ts";
import type { Database } from "../../db/open-database.ts";
import type { HomePaths } from "../../home/home-paths.ts";
import type { CliContext } from "../cli-context.ts";
import { reportDelivery } from "../delivery-report.ts";
import type { AcmeCommandOptions } from "./mail-tls-acme.ts";
import { formatRows, parseFormat } from "../format.ts";

function flag(value: string | undefined, field: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === "1" || value === "0") return value === "1";
  throw invalid(field, "must be 0 or 1");
}

/** Settings and TLS changes need the whole state on the vnode (config files, not rows). */
async function pushWhole(ctx: CliContext, paths: HomePaths, db: Database, vnode: Vnode): Promise<void> {
  const outcome = await commandDeliver(ctx, db, paths).deliver({ vnode: vnode.name, actor: ctx.actor });
  reportDelivery(ctx, vnode.name, outcome, { showDiff: true });
}

export function registerVnodeMail(program: Command, ctx: CliContext): void {
  const vnode = program.commands.find((c) => c.name() === "vnode");
  if (!vnode) throw new Error("register vnode commands first");
  vnode
    .command("set <name>")
    .description("mail settings of a vnode: host name, listen addresses, Rspamd and ClamAV")
    .option("--mail-hostname <fqdn>", "name the mail daemons greet with and present in TLS")
    .option("--mail-listen <addresses>", "comma-separated IP addresses (empty string = all)")
    .option("--rspamd <0|1>", "scan mail with Rspamd (milter) and sign with DKIM")
    .option("--clamav <0|1>", "scan mail for viruses with ClamAV (through Rspamd)")
    .option("--web-listen <ip:port>", "HTTPS listener for MTA-STS, autoconfig, autodiscover (empty string = off)")
    .option(
      "--http-listen <ip:port>",
      "plain-HTTP listener for ACME HTTP-01 challenges, e.g. IP:80 (empty string = off)",
    )
    .option("--web-directory <dir>", "write those files into a directory a web server serves (empty string = none)")
    .option("--home <dir>", "controller home")
    .action(
      async (
        name: string,
        options: {
          mailHostname?: string;
          mailListen?: string;
          rspamd?: string;
          clamav?: string;
          webListen?: string;
          httpListen?: string;
          webDirectory?: string;
          home?: string;
        },
      ) => {
        const input = {
          name,
          ...(options.webListen !== undefined ? { webListen: options.webListen } : {}),
          ...(options.httpListen !== undefined ? { httpListen: options.httpListen } : {}),
          ...(options.webDirectory !== undefined ? { webDirectory: options.webDirectory } : {}),
          ...(options.mailHostname !== undefined ? { mailHostname: options.mailHostname } : {}),
          ...(options.mailListen !== undefined ? { mailListen: options.mailListen } : {}),
        };
        const rspamd = flag(options.rspamd, "rspamd");
        const clamav = flag(options.clamav, "clamav");
        const paths = ctx.paths(options.home);
        const db = await ctx.openDb(paths);
        try {
          const em = db.em();
          const row = await audited(
            em,
            {
              actor: ctx.actor,
              command: "vnode set",
              vnodeName: name.slice(0, 63),
              args: { ...options, home: undefined },
            },
            () =>
              changeVnodeSettings(em, {
                ...input,
                ...(rspamd !== undefined ? { rspamd } : {}),
                ...(clamav !== undefined ? { clamav } : {}),
              }),
          );
          ctx.io.out(
            `vnode ${name}: mail host ${row.mailHostname ?? row.name}, listen ${row.mailListen?.join(",") ?? "all"}, rspamd ${row.rspamdEnabled ? "on" : "off"}, clamav ${row.clamavEnabled ? "on" : "off"}, web ${row.webListen ?? "off"}${row.webDirectory ? ` (files in ${row.webDirectory})` : ""}${row.httpListen ? `, http-01 on ${row.httpListen}` : ""} (generation ${row.generation})\n`,
          );
          await pushWhole(ctx, paths, db, row);
        } finally {
          await db.close();
        }
      },
    );

  const tls = program.command("mail:tls").description("the TLS certificate a vnode's mail daemons present");
  tls
    .command("set <vnode>")
    .description("use the operator's certificate chain and key instead of one from the controller's CA")
    .requiredOption("--cert <file>", "PEM certificate chain (leaf first)")
    .requiredOption("--key <file>", "PEM private key")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: { cert: string; key: string; home?: string }) => {
      const read = (file: string, field: string): string => {
        try {
          return readFileSync(file, "utf8");
        } catch {
          throw invalid(field, `cannot read ${file}`);
        }
      };
      const chainPem = read(options.cert, "cert");
      const keyPem = read(options.key, "key");
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const row = await audited(
          em,
          { actor: ctx.actor, command: "mail:tls set", vnodeName: name.slice(0, 63), args: { cert: options.cert } },
          () => setOperatorTls(em, { name, chainPem, keyPem }),
        );
        ctx.io.out(`vnode ${name}: operator certificate stored (generation ${row.generation})\n`);
        await pushWhole(ctx, paths, db, row);
      } finally {
        await db.close();
      }
    });
  tls
    .command("clear <vnode>")
    .description("go back to a certificate from the controller's CA (from the operator's or ACME's)")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: { home?: string }) => {
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const row = await audited(
          em,
          { actor: ctx.actor, command: "mail:tls clear", vnodeName: name.slice(0, 63) },
          () => clearOperatorTls(em, name),
        );
        await pushWhole(ctx, paths, db, row);
      } finally {
        await db.close();
      }
    });
  tls
    .command("acme <vnode>")
    .description("get the mail certificate from an ACME server (DNS-01 through the DNS provider), renewed by serve")
    .option("--email <address>", "contact for the ACME account (expiry notices)")
    .option("--server <url>", "ACME directory URL (default: Let's Encrypt)")
    .option("--server-ca <file>", "PEM CA trusted for the ACME server's own HTTPS (a test or private ACME server)")
    .option("--staging", "Let's Encrypt's staging server")
    .option("--challenge <type>", "dns-01 (default) | http-01")
    .option(
      "--domain <domain>",
      "instead: the certificate for a hosted domain's autoconfig., autodiscover. (and mta-sts.) names; repeatable",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option(
      "--all-domains",
      "instead: a certificate for every active hosted domain, now and for domains added later (renewed by serve)",
    )
    .option("--mail-name", "with --domain or --all-domains: include mail.<domain> (served by SNI on the mail ports)")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: AcmeCommandOptions & { home?: string }) => {
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        // acme-client (and its HTTP stack) loads only for this command.
        const { runAcmeCommand } = await import("./mail-tls-acme.ts");
        await runAcmeCommand(ctx, paths, db, name, options, (row) => pushWhole(ctx, paths, db, row));
      } finally {
        await db.close();
      }
    });
  tls
    .command("show [vnode]")
    .description("every vnode's mail certificate: source, issuer, names, expiry, next renewal, ACME state")
    .option("--format <format>", "table | json | csv")
    .option("--json", "JSON output")
    .option("--home <dir>", "controller home")
    .action(async (name: string | undefined, options: { format?: string; json?: boolean; home?: string }) => {
      const format = parseFormat(options.format, options.json);
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const { mailTlsView, MAIL_TLS_COLUMNS } = await import("./mail-tls-view.ts");
        ctx.io.out(formatRows(await mailTlsView(db.em(), paths, name), MAIL_TLS_COLUMNS, format));
      } finally {
        await db.close();
      }
    });
}
