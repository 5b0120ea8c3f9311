// addvmaildomain <vnode> <domain>: host mail for a domain on a vnode. The domain must have a DNS
// zone (the zone list <home>/dns-zones for now) unless --skip-dns-check, which the log records.
import { existsSync } from "node:fs";
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { dnsZonesPath, withMail } from "../../mail-context.ts";
import { parseCount, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  quota?: string;
  maxMailboxes?: string;
  maxAliases?: string;
  maxQuota?: string;
  overcommit?: boolean;
  skipDnsCheck?: boolean;
  dryRun?: boolean;
}

export function registerAddvmaildomain(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("addvmaildomain <vnode> <domain>")
      .description("add a mail domain to a vnode")
      .option("--quota <size>", "default mailbox quota (default: MQUOTA, else 1G)")
      .option("--max-mailboxes <n>", "most mailboxes (0 = unlimited)")
      .option("--max-aliases <n>", "most aliases (0 = unlimited)")
      .option("--max-quota <size>", "largest quota of one mailbox (0 = unlimited)")
      .option("--overcommit", "allow the sum of quotas to exceed the vnode's mail filesystem")
      .option("--skip-dns-check", "add it even though no DNS zone holds it (recorded in the command log)")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, domain: string, flags: Flags) => {
    const maxMailboxes = parseCount(flags.maxMailboxes, "maxMailboxes");
    const maxAliases = parseCount(flags.maxAliases, "maxAliases");
    await withMail(ctx, flags, async (session) => {
      if (!flags.skipDnsCheck && !existsSync(dnsZonesPath(session.paths))) {
        ctx.io.err(
          `note: no zone list at ${dnsZonesPath(session.paths)} (one zone per line): every domain fails the DNS check until it exists or --skip-dns-check is given\n`,
        );
      }
      const result = await session.services.domains.add({
        vnode,
        domain,
        defaultQuota: flags.quota,
        maxMailboxes,
        maxAliases,
        maxQuota: flags.maxQuota,
        overcommit: flags.overcommit,
        skipDnsCheck: flags.skipDnsCheck,
        dryRun: flags.dryRun,
      });
      await reportMutation(
        ctx,
        session,
        result,
        `added mail domain ${result.value.domain}${flags.skipDnsCheck ? " (DNS check skipped)" : ""}`,
      );
    });
  });
}
