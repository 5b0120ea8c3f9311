// Fresh databases for the mail-data tests: the embedded PGlite always, and a real PostgreSQL
// (a new database per test file, from DATABASE_URL_TEST) when scripts/test provides one. Each
// test builds its own vnode and domains (`mailFixture`), so no test depends on another's state.
import { NetservaError } from "../../common/errors.ts";
import { openDatabase } from "../../controller/db/open-database.ts";
import type { Database, DatabaseOptions } from "../../controller/db/open-database.ts";
import { CommandLog, Vnode } from "../../controller/db/entities/index.ts";
import { createMailServices } from "../../controller/mail/create-mail-services.ts";
import { createZoneListProvider } from "../../controller/dns/zone-list-provider.ts";
import type { MailServices } from "../../controller/mail/mail-api.ts";
import { freshPostgresUrl } from "./fresh-postgres.ts";

export const pgUrl = process.env["DATABASE_URL_TEST"];

/** What a test may add to how its database is opened (a statement recorder). */
export type OpenExtra = Pick<DatabaseOptions, "onQuery">;

export async function freshPostgres(url: string, poolSize?: number, extra: OpenExtra = {}): Promise<Database> {
  const target = await freshPostgresUrl(url, "mail");
  return openDatabase({ url: target, ...(poolSize === undefined ? {} : { poolSize }), ...extra });
}

export const databaseTargets: Array<[string, (extra?: OpenExtra) => Promise<Database>]> = [
  ["pglite", (extra = {}) => openDatabase({ dataDir: "memory://", ...extra })],
];
if (pgUrl) databaseTargets.push(["postgresql", (extra = {}) => freshPostgres(pgUrl, undefined, extra)]);

let counter = 0;

export interface MailFixture {
  vnode: string;
  vnodeId: number;
  /** Hosted zones: d1.example, d2.example (and their subdomains). */
  d1: string;
  d2: string;
  services: MailServices;
  /** Services with other options (capacity, zones) on a fresh entity manager. */
  with(options: { capacity?: number; zones?: string[] }): MailServices;
  generation(): Promise<number>;
  logRows(): Promise<CommandLog[]>;
}

/** A new vnode with two zones and, unless `domains: false`, both domains added. */
export async function mailFixture(
  db: Database,
  options: { domains?: boolean; status?: string } = {},
): Promise<MailFixture> {
  counter += 1;
  const tag = `${process.pid.toString(36)}${counter}`;
  const vnode = `vn-${tag}`;
  const em = db.em();
  const row = em.create(Vnode, { name: vnode, address: "127.0.0.1:7444", status: options.status ?? "enrolled" });
  await em.flush();
  const d1 = `d1-${tag}.example`;
  const d2 = `d2-${tag}.example`;
  const make = (o: { capacity?: number; zones?: string[] } = {}) =>
    createMailServices({
      em: db.em(),
      actor: "tester",
      dns: createZoneListProvider({ zones: o.zones ?? [d1, d2] }),
      ...(o.capacity === undefined ? {} : { vnodeCapacity: async () => o.capacity }),
    });
  const services = make();
  if (options.domains !== false) {
    await services.domains.add({ vnode, domain: d1 });
    await services.domains.add({ vnode, domain: d2 });
  }
  return {
    vnode,
    vnodeId: row.id,
    d1,
    d2,
    services,
    with: make,
    async generation() {
      const v = await db.em().findOneOrFail(Vnode, { id: row.id });
      return Number(v.generation);
    },
    logRows: () => db.em().find(CommandLog, { vnodeName: vnode }, { orderBy: { id: "asc" } }),
  };
}

/** Everything a refused change must leave as it was: the mail tables and the generation. */
export async function mailSnapshot(db: Database, vnodeId: number): Promise<string> {
  const em = db.em();
  const parts = await Promise.all([
    em.execute(
      "select domain, active, default_quota, max_mailboxes, max_aliases, max_quota, overcommit from mail_vhosts order by domain",
    ),
    em.execute(
      "select address, password_hash, quota, active, display_name, sieve_script from mail_vboxes order by address",
    ),
    em.execute("select source, targets, active from mail_valias order by source"),
    em.execute("select domain_id, name, value, secret from vconfs order by domain_id, name"),
    em.execute("select generation from vnodes where id = ?", [vnodeId]),
  ]);
  return JSON.stringify(parts);
}

/** Awaits a refusal and checks its code and message; returns it for more checks. */
export async function refusal(promise: Promise<unknown>, code: string, message: RegExp): Promise<NetservaError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  if (!(caught instanceof NetservaError)) throw new Error(`expected a NetservaError (${code}), got ${String(caught)}`);
  if (caught.code !== code || !message.test(caught.message))
    throw new Error(`expected ${code} ${String(message)}, got ${caught.code}: ${caught.message}`);
  return caught;
}
