// mail:dns <vnode> <domain>: the records a mail domain needs (MX, SPF, DMARC, DKIM, optional
// MTA-STS and TLS-RPT, autoconfig/autodiscover; the mail host's address and PTR), printed as a
// BIND fragment (--show, the default) or put into PowerDNS (--publish). Policy flags given here
// are stored with the domain once the records are shown or published, so mail:dns-check expects
// the same values later.
import type { Command } from "commander";
import { invalid } from "../../../../common/errors.ts";
import { audited } from "../../../audit/audit.ts";
import { domainOnVnode, listDkimKeys } from "../../../dkim/dkim-store.ts";
import { planDomainRecords, planVnodeRecords, saveDnsPolicy, vnodeMailIdentity } from "../../../dns/mail-dns-plan.ts";
import type { MailDnsPolicyInput } from "../../../dns/mail-policy.ts";
import { mtaStsPolicy } from "../../../dns/mta-sts.ts";
import { mtaStsModeOf } from "../../../dns/presented-certificates.ts";
import { rrsetsAsFragment } from "../../../dns/print-provider.ts";
import { contentOf, publishRecords } from "../../../dns/publish-records.ts";
import type { CliContext } from "../../cli-context.ts";
import { dnsSetupFor } from "../../dns-context.ts";

interface Flags {
  show?: boolean;
  publish?: boolean;
  spf?: string;
  dmarcPolicy?: string;
  rua?: string;
  mtaSts?: boolean;
  tlsRpt?: string | boolean;
  address?: string;
  home?: string;
}

export function registerMailDns(program: Command, ctx: CliContext): void {
  program
    .command("mail:dns <vnode> <domain>")
    .description("show (BIND fragment) or publish (PowerDNS) the DNS records of a mail domain")
    .option("--show", "print the records as a BIND zone-file fragment (default)")
    .option("--publish", "put the records into PowerDNS")
    .option("--spf <record>", 'SPF record (default "v=spf1 mx a -all")')
    .option("--dmarc-policy <p>", "none | quarantine | reject (default quarantine)")
    .option("--rua <uris>", "DMARC aggregate reports to (mailto:…, comma-separated)")
    .option("--mta-sts", "publish MTA-STS (_mta-sts TXT, mta-sts host) and print the policy file")
    .option("--tls-rpt [uris]", "publish TLS-RPT (default rua mailto:tlsrpt@<domain>)")
    .option("--address <ips>", "the vnode's sending addresses (default: its mail listen addresses)")
    .option("--home <dir>", "controller home")
    .action(async (vnodeName: string, domainName: string, flags: Flags) => {
      if (flags.show && flags.publish) throw invalid("publish", "give --show or --publish, not both");
      const paths = ctx.paths(flags.home);
      const dns = dnsSetupFor(paths, ctx.io.env);
      const provider = flags.publish ? dns.provider : undefined;
      if (flags.publish && !provider)
        throw invalid(
          "publish",
          "no DNS provider configured: set NETSERVA_PDNS_URL and NETSERVA_PDNS_API_KEY (or dns.url/dns.apiKey in controller.json); --show prints the records",
        );
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const policy: MailDnsPolicyInput = {
          ...(flags.spf !== undefined ? { spf: flags.spf } : {}),
          ...(flags.dmarcPolicy !== undefined ? { dmarcPolicy: flags.dmarcPolicy } : {}),
          ...(flags.rua !== undefined ? { dmarcRua: flags.rua } : {}),
          ...(flags.mtaSts ? { mtaSts: true } : {}),
          ...(typeof flags.tlsRpt === "string" ? { tlsRptRua: flags.tlsRpt } : {}),
        };
        await audited(
          em,
          {
            actor: ctx.actor,
            command: "mail:dns",
            vnodeName: vnodeName.slice(0, 63),
            args: { domain: domainName, publish: flags.publish === true, ...policy, address: flags.address },
          },
          async () => {
            const { vnode, domain } = await domainOnVnode(em, vnodeName, domainName);
            if (flags.tlsRpt === true) policy.tlsRptRua = `mailto:tlsrpt@${domain.domain}`;
            const identity = vnodeMailIdentity(vnode, flags.address);
            const domainRecs = await planDomainRecords(em, domain, identity, await listDkimKeys(em, domain.id), policy);
            const records = [...domainRecs, ...planVnodeRecords(identity)];
            const mtaSts = domainRecs.some((r) => r.check === "mta-sts");
            if (provider) {
              if ((await provider.findZone(domain.domain)) === undefined)
                throw invalid("domain", `no zone at ${provider.kind} holds ${domain.domain}: create the zone first`);
              const outcome = await publishRecords(provider, records, dns.config.ttl);
              for (const p of outcome.published)
                ctx.io.out(`published ${p.record.name} ${p.record.type} (${p.record.check}) in zone ${p.zone}\n`);
              for (const s of outcome.skipped)
                ctx.io.err(
                  `not published: ${s.record.name} ${s.record.type} ${s.record.values.join(" ")}: ${s.reason}; set it where that name is served\n`,
                );
            } else {
              ctx.io.out(`; mail DNS for ${domain.domain} on ${vnode.name} (mail host ${identity.mailHost})\n`);
              ctx.io.out(
                rrsetsAsFragment(
                  records.map((r) => ({ name: r.name, type: r.type, ttl: dns.config.ttl, records: contentOf(r) })),
                ),
              );
            }
            if (mtaSts) {
              const mode = await mtaStsModeOf(em.fork(), vnode.id, identity.mailHost);
              ctx.io.out(
                `; MTA-STS policy (served by the vnode when it has a web listener or directory; mode ${mode === "testing" ? "testing until the MX presents an ACME certificate" : "enforce"}), at https://mta-sts.${domain.domain}/.well-known/mta-sts.txt:\n${mtaStsPolicy(identity.mailHost, mode).replace(/^/gm, "; ").replace(/; $/, "")}`,
              );
            }
            await saveDnsPolicy(em, domain.id, policy);
          },
        );
      } finally {
        await db.close();
      }
    });
}
