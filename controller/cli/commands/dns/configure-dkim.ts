// mail:configure-dkim <vnode> <domain>: a DKIM key for a domain, its record printed or published,
// and the vnode's Rspamd signing with it. See controller/dkim/configure-dkim.ts for the lifecycle.
import type { Command } from "commander";
import { invalid } from "../../../../common/errors.ts";
import { audited } from "../../../audit/audit.ts";
import { configureDkim } from "../../../dkim/configure-dkim.ts";
import type { ConfigureDkimResult } from "../../../dkim/configure-dkim.ts";
import { rrsetsAsFragment } from "../../../dns/print-provider.ts";
import { contentOf } from "../../../dns/publish-records.ts";
import type { CliContext } from "../../cli-context.ts";
import { dnsSetupFor } from "../../dns-context.ts";
import { commandDeliver } from "../../command-deliver.ts";
import { reportDelivery } from "../../delivery-report.ts";

interface Flags {
  selector?: string;
  algorithm?: string;
  bits?: string;
  publish?: boolean;
  rotate?: boolean;
  finish?: boolean;
  wait?: string;
  json?: boolean;
  home?: string;
}

function parseWait(value: string | undefined): number {
  if (value === undefined) return 60_000;
  if (!/^[0-9]{1,4}$/.test(value)) throw invalid("wait", "must be whole seconds, 0..9999");
  return Number(value) * 1000;
}

function report(ctx: CliContext, r: ConfigureDkimResult, ttl: number, waitMs: number, servers: string): void {
  for (const k of r.removed)
    ctx.io.out(
      `removed retired key ${k.selector} (${k.algorithm})${r.published ? " and its DNS record" : ": delete its record from DNS"}\n`,
    );
  for (const k of r.created)
    ctx.io.out(`created ${k.algorithm}${k.bits ? `-${k.bits}` : ""} key ${k.selector} for ${r.domain}\n`);
  if (r.records.length > 0) {
    if (r.published) for (const rec of r.records) ctx.io.out(`published ${rec.name} TXT\n`);
    else
      ctx.io.out(
        `; publish in DNS:\n${rrsetsAsFragment(r.records.map((rec) => ({ name: rec.name, type: rec.type, ttl, records: contentOf(rec) })))}`,
      );
  }
  if (r.activated.length > 0)
    ctx.io.out(
      `signing ${r.domain} with ${r.activated.map((k) => k.selector).join(", ")} on ${r.vnode} (generation ${r.generation})\n`,
    );
  if (r.retired.length > 0)
    ctx.io.out(
      `retired ${r.retired.map((k) => k.selector).join(", ")}: its record stays in DNS until \`mail:configure-dkim ${r.vnode} ${r.domain} --finish${r.published ? " --publish" : ""}\` (or the next --rotate)\n`,
    );
  if (r.pending.length > 0) {
    const waited = r.published ? ` after ${waitMs / 1000} s` : "";
    ctx.io.err(
      `not switched yet: ${r.pending.map((k) => k.selector).join(", ")} not visible over DNS at ${servers}${waited}; run the same command again once it is\n`,
    );
  }
  if (r.created.length === 0 && r.removed.length === 0 && r.activated.length === 0 && r.pending.length === 0)
    ctx.io.out(`nothing to do for ${r.domain}\n`);
}

export function registerConfigureDkim(program: Command, ctx: CliContext): void {
  program
    .command("mail:configure-dkim <vnode> <domain>")
    .description("generate a DKIM key for a domain, publish or print its record, sign with it on the vnode")
    .option("--selector <name>", "one DNS label (default <algorithm>-<yyyymmdd>; with both: a prefix)")
    .option("--algorithm <alg>", "rsa | ed25519 | both (RFC 8463: one of each)", "rsa")
    .option("--bits <n>", "RSA key size: 1024, 2048, 3072, 4096", "2048")
    .option("--publish", "put the record into PowerDNS instead of printing it")
    .option("--rotate", "new key beside the current one; signing switches once its record is visible")
    .option("--finish", "forget retired keys (and delete their records with --publish)")
    .option("--wait <seconds>", "how long to wait for a published record to show over DNS", "60")
    .option("--json", "print the result as JSON")
    .option("--home <dir>", "controller home")
    .action(async (vnode: string, domain: string, flags: Flags, command: Command) => {
      // Defaults only count as given when typed: an in-flight rotation refuses new choices.
      const given = (name: string): boolean => command.getOptionValueSource(name) === "cli";
      const waitMs = parseWait(flags.wait);
      const paths = ctx.paths(flags.home);
      const dns = dnsSetupFor(paths, ctx.io.env);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const args = {
          domain,
          selector: flags.selector,
          algorithm: given("algorithm") ? flags.algorithm : undefined,
          bits: given("bits") ? flags.bits : undefined,
          publish: flags.publish === true,
          rotate: flags.rotate === true,
          finish: flags.finish === true,
        };
        const result = await audited(
          em,
          { actor: ctx.actor, command: "mail:configure-dkim", vnodeName: vnode.slice(0, 63), args },
          () =>
            configureDkim(
              { vnode, ...args },
              { em, provider: dns.provider, lookup: dns.lookup, ttl: dns.config.ttl, waitMs },
            ),
        );
        if (flags.json) ctx.io.out(`${JSON.stringify(result, null, 2)}\n`);
        else report(ctx, result, dns.config.ttl, waitMs, dns.lookup.servers);
        // DKIM keys are config (Rspamd's dkim_signing and key files): the whole state goes.
        if (result.generation !== null)
          reportDelivery(
            ctx,
            result.vnode,
            await commandDeliver(ctx, db, paths).deliver({ vnode: result.vnode, actor: ctx.actor }),
          );
      } finally {
        await db.close();
      }
    });
}
