// mail:dns-check <vnode> [domain]: every expected record read over DNS (the configured resolver,
// e.g. the authoritative PowerDNS) and compared: OK / MISSING / WRONG with expected and found;
// then PTR and forward-confirmed reverse DNS of the vnode's sending addresses against its HELO
// name. Exit 0 only when every row is OK (4 otherwise; 5 when DNS does not answer).
import type { Command } from "commander";
import { NetservaError, invalid } from "../../../../common/errors.ts";
import { VMailDomain } from "../../../db/entities/index.ts";
import { domainOnVnode } from "../../../dkim/dkim-store.ts";
import { checkFcrdns, checkRecords } from "../../../dns/dns-check.ts";
import type { CheckRow } from "../../../dns/dns-check.ts";
import { planDomainRecords, planVnodeRecords, vnodeMailIdentity } from "../../../dns/mail-dns-plan.ts";
import { findVnode } from "../../../fleet/vnode-service.ts";
import { listDkimKeys } from "../../../dkim/dkim-store.ts";
import type { CliContext } from "../../cli-context.ts";
import { formatRows } from "../../format.ts";
import { dnsSetupFor } from "../../dns-context.ts";

interface Flags {
  format?: string;
  json?: boolean;
  address?: string;
  home?: string;
}

function parseCheckFormat(flags: Flags): "table" | "json" {
  const format = flags.json ? "json" : (flags.format ?? "table");
  if (format !== "table" && format !== "json") throw invalid("format", `'${format.slice(0, 12)}' is not table or json`);
  return format;
}

export function registerMailDnsCheck(program: Command, ctx: CliContext): void {
  program
    .command("mail:dns-check <vnode> [domain]")
    .description("read the mail DNS records of a vnode's domains over DNS: OK / MISSING / WRONG")
    .option("--format <format>", "table | json")
    .option("--json", "JSON output")
    .option("--address <ips>", "the vnode's sending addresses (default: its mail listen addresses)")
    .option("--home <dir>", "controller home")
    .action(async (vnodeName: string, domainName: string | undefined, flags: Flags) => {
      const format = parseCheckFormat(flags);
      const paths = ctx.paths(flags.home);
      const dns = dnsSetupFor(paths, ctx.io.env);
      const db = await ctx.openDb(paths);
      const rows: CheckRow[] = [];
      try {
        const em = db.em();
        const vnode = await findVnode(em, vnodeName);
        const domains =
          domainName !== undefined
            ? [(await domainOnVnode(em, vnodeName, domainName)).domain]
            : await em.find(VMailDomain, { vnodeId: vnode.id }, { orderBy: { domain: "asc" } });
        const identity = vnodeMailIdentity(vnode, flags.address);
        for (const domain of domains)
          rows.push(
            ...(await checkRecords(
              dns.lookup,
              domain.domain,
              await planDomainRecords(em, domain, identity, await listDkimKeys(em, domain.id)),
              identity.mailHost,
            )),
          );
        rows.push(...(await checkRecords(dns.lookup, null, planVnodeRecords(identity), identity.mailHost)));
        for (const ip of identity.sendingAddresses) rows.push(await checkFcrdns(dns.lookup, ip, identity.mailHost));
        if (identity.sendingAddresses.length === 0)
          rows.push({
            domain: null,
            check: "ptr",
            name: vnode.name,
            type: "PTR",
            status: "MISSING",
            expected: "a sending address",
            found: "none known: set `vnode set --mail-listen` or give --address",
          });
      } finally {
        await db.close();
      }
      if (format === "json") ctx.io.out(`${JSON.stringify(rows, null, 2)}\n`);
      else
        ctx.io.out(
          formatRows(
            rows.map((r) => ({ ...r, domain: r.domain ?? "(vnode)" })),
            ["domain", "check", "name", "type", "status", "expected", "found"],
            "table",
          ),
        );
      const bad = rows.filter((r) => r.status !== "OK");
      if (bad.length > 0)
        throw new NetservaError(
          "failed_precondition",
          `${bad.length} of ${rows.length} DNS checks not OK (asked ${dns.lookup.servers})`,
        );
      ctx.io.err(`all ${rows.length} DNS checks OK (asked ${dns.lookup.servers})\n`);
    });
}
