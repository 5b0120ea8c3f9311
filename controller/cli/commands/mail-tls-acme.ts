// `mail:tls acme <vnode>`: the vnode's mail certificate from an ACME server. Records the request,
// runs the first order now (DNS-01 through the configured DNS provider), stores the certificate
// and pushes it with the whole state; the ACME sweep in `serve` renews it from then on. A failed
// order changes nothing that is served: the error is printed and kept for `mail:tls show`.
import { NetservaError, invalid } from "../../../common/errors.ts";
import { audited } from "../../audit/audit.ts";
import { Vnode } from "../../db/entities/index.ts";
import type { Database } from "../../db/open-database.ts";
import { readControllerConfig } from "../../home/controller-config.ts";
import type { HomePaths } from "../../home/home-paths.ts";
import { parseAcmeEmail, parseAcmeServer, readServerCa } from "../../acme/acme-server.ts";
import {
  requestAllDomainsAcme,
  requestDomainAcme,
  requestMailHostAcme,
  runAcmeOrder,
} from "../../acme/acme-mail-host.ts";
import type { ChallengeType } from "../../acme/challenge-solver.ts";
import type { CliContext } from "../cli-context.ts";
import { dnsSetupFor } from "../dns-context.ts";
import { commandDeliver } from "../command-deliver.ts";

export interface AcmeCommandOptions {
  email?: string;
  server?: string;
  serverCa?: string;
  staging?: boolean;
  challenge?: string;
  /** Hosted domains to get their published names' certificate for, instead of the mail host's. */
  domain?: string[];
  /** Every active hosted domain, now and later (the sweep follows the domains). */
  allDomains?: boolean;
  mailName?: boolean;
}

function parseChallenge(value: string | undefined): ChallengeType {
  if (value === undefined || value === "dns-01") return "dns-01";
  if (value === "http-01") return "http-01";
  throw invalid("challenge", "must be dns-01 or http-01");
}

export async function runAcmeCommand(
  ctx: CliContext,
  paths: HomePaths,
  db: Database,
  name: string,
  options: AcmeCommandOptions,
  pushWhole: (vnode: Vnode) => Promise<void>,
): Promise<void> {
  const serverUrl = parseAcmeServer(options.server, options.staging);
  const serverCaPem = readServerCa(options.serverCa);
  const email = parseAcmeEmail(options.email);
  const challenge = parseChallenge(options.challenge);
  const config = readControllerConfig(paths.config);
  const dns = dnsSetupFor(paths, ctx.io.env).provider;
  const em = db.em();
  const retry = { retryMs: config.acmeRetrySeconds * 1000, maxMs: config.acmeRetryMaxSeconds * 1000 };
  const domains = options.domain ?? [];
  if (options.allDomains && domains.length > 0)
    throw invalid("all-domains", "give --domain or --all-domains, not both");
  if (options.mailName && domains.length === 0 && !options.allDomains)
    throw invalid("mail-name", "goes with --domain or --all-domains");
  const request = { vnode: name, serverUrl, serverCaPem, email, challenge };
  const mailName = options.mailName ?? false;
  // One order per certificate: the mail host's, or one per domain asked for, each audited.
  let orders: Array<{ label: string; purpose: () => Promise<number> }>;
  if (options.allDomains) {
    const ids = await audited(
      em,
      {
        actor: ctx.actor,
        command: "mail:tls acme",
        vnodeName: name.slice(0, 63),
        args: { server: serverUrl, allDomains: true },
      },
      () => requestAllDomainsAcme(em, { ...request, mailName }),
    );
    ctx.io.out(
      `vnode ${name}: every hosted domain gets an ACME certificate (${ids.length} now; domains added later at serve's next certificate check)\n`,
    );
    orders = ids.map(({ id, domain }) => ({ label: domain, purpose: () => Promise.resolve(id) }));
  } else
    orders =
      domains.length === 0
        ? [{ label: "", purpose: async () => (await requestMailHostAcme(em, request)).id }]
        : domains.map((domain) => ({
            label: domain,
            purpose: async () => (await requestDomainAcme(em, { ...request, domain, mailName })).id,
          }));
  for (const order of orders) {
    const result = await audited(
      em,
      {
        actor: ctx.actor,
        command: "mail:tls acme",
        vnodeName: name.slice(0, 63),
        args: {
          server: serverUrl,
          challenge,
          ...(email ? { email } : {}),
          ...(order.label ? { domain: order.label } : {}),
        },
      },
      async () => {
        const r = await runAcmeOrder(em, await order.purpose(), {
          dns,
          retry,
          push: (vnode) => commandDeliver(ctx, db, paths).deliver({ vnode, actor: ctx.actor }),
        });
        if (r.outcome === "busy")
          throw new NetservaError(
            "failed_precondition",
            `an ACME order for ${name} is already running elsewhere; see \`mail:tls show ${name}\``,
          );
        if (r.outcome === "failed")
          throw new NetservaError(
            r.error.code,
            `${r.error.message}\nthe certificate in use is kept; retried from ${r.nextAttemptAt.toISOString()} by \`serve\` (see \`mail:tls show ${name}\`)`,
            { cause: r.error },
          );
        return r;
      },
    );
    ctx.io.out(
      `vnode ${name}: ACME certificate for ${result.names.join(", ")} from ${result.certificate.issuer}, valid until ${result.certificate.notAfter.toISOString()} (generation ${result.generation})\n`,
    );
  }
  await pushWhole(await em.fork().findOneOrFail(Vnode, { name }));
}
