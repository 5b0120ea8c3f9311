// What every mail command needs: the mail services on the controller database, and a way to
// bring the hosting vnode up to date after a change. The DNS check of new domains reads the zone
// list `<home>/dns-zones` (one zone per line, `#` comments; PowerDNS replaces it with the DNS
// issue); without that file every domain is refused unless `--skip-dns-check` is given.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createMailServices } from "../mail/create-mail-services.ts";
import { createZoneListProvider } from "../dns/zone-list-provider.ts";
import { powerDnsZonesFor } from "./dns-context.ts";
import type { MailServices, MutationResult } from "../mail/mail-api.ts";
import { commandDeliver } from "./command-deliver.ts";
import type { DeliverOutcome } from "../fleet/deliver.ts";
import { reportDelivery } from "./delivery-report.ts";
import type { Database } from "../db/open-database.ts";
import type { HomePaths } from "../home/home-paths.ts";
import type { SqlEntityManager } from "@mikro-orm/sql";
import type { CliContext } from "./cli-context.ts";
import { timed } from "../../common/phase-timing.ts";

export const DNS_ZONES_FILE = "dns-zones";

export interface MailSession {
  services: MailServices;
  db: Database;
  paths: HomePaths;
  /** Services bound to another entity manager (one transaction per import batch). */
  servicesFor(em: SqlEntityManager): MailServices;
  /** Send a committed change to its vnode and tell the operator how it went (never throws). */
  push(result: MutationResult<unknown>): Promise<DeliverOutcome>;
  /** A change to `vnode` is coming: connect to its agent meanwhile (see DeliverService.warm). */
  warm(vnode: string): void;
}

export interface MailSessionOptions {
  home?: string | undefined;
}

export function dnsZonesPath(paths: HomePaths): string {
  return join(paths.root, DNS_ZONES_FILE);
}

/** Opens the database, runs `work` with the mail services, closes the database. */
export async function withMail<T>(
  ctx: CliContext,
  options: MailSessionOptions,
  work: (session: MailSession) => Promise<T>,
): Promise<T> {
  const paths = ctx.paths(options.home);
  const zonesFile = dnsZonesPath(paths);
  // DNS issue: with PowerDNS configured (controller.json "dns" / NETSERVA_PDNS_*), its zones decide.
  const dns =
    powerDnsZonesFor(paths, ctx.io.env) ??
    (existsSync(zonesFile) ? createZoneListProvider({ file: zonesFile }) : createZoneListProvider({ zones: [] }));
  const db = await timed("session.open-db", () => ctx.openDb(paths));
  // One per session (a connection warm() opens is the one push() then uses), or serve's own.
  const deliver = commandDeliver(ctx, db, paths);
  try {
    const servicesFor = (em: SqlEntityManager): MailServices =>
      createMailServices({
        em,
        actor: ctx.actor,
        dns,
        notifyHolder: db.kind === "postgresql",
      });
    const session: MailSession = {
      services: servicesFor(db.em()),
      db,
      paths,
      servicesFor,
      async push(result) {
        let outcome: DeliverOutcome;
        if (!result.dryRun && result.changes.length === 0)
          outcome = { pushed: false, reason: "nothing changed", diff: [] };
        else
          try {
            // Several controllers on PostgreSQL: the vnode's lease holder pushes what was committed.
            outcome = await deliver.deliver({
              vnode: result.vnode,
              ...(result.vnodeRow ? { known: result.vnodeRow } : {}),
              actor: ctx.actor,
              changes: { generation: result.generation, list: result.changes },
              dryRun: result.dryRun,
            });
          } catch (error) {
            outcome = { pushed: false, reason: (error as Error).message, diff: [] };
          }
        reportDelivery(ctx, result.vnode, outcome, { dryRun: result.dryRun });
        return outcome;
      },
      warm: (vnode) => deliver.warm?.(vnode),
    };
    return await timed("session.work", () => work(session));
  } finally {
    await timed("session.close", async () => {
      deliver.close?.();
      await db.close();
    });
  }
}
