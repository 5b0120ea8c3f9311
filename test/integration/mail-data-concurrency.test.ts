// Concurrency: 50 simultaneous adds of one address (each with its own entity manager, as 50 CLI
// invocations would be) give exactly one mailbox and 49 clean conflicts; the same for a domain
// raced from many vnodes, where only the unique constraint stands between them. On real
// PostgreSQL (DATABASE_URL_TEST) with a pool of connections; on PGlite too (one connection).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../controller/db/open-database.ts";
import { openDatabase } from "../../controller/db/open-database.ts";
import { NetservaError } from "../../common/errors.ts";
import { createMailServices } from "../../controller/mail/create-mail-services.ts";
import { createZoneListProvider } from "../../controller/dns/zone-list-provider.ts";
import { freshPostgres, mailFixture, pgUrl } from "../helpers/mail-data-db.ts";

const targets: Array<[string, () => Promise<Database>]> = [["pglite", () => openDatabase({ dataDir: "memory://" })]];
const url = pgUrl;
if (url) targets.push(["postgresql", () => freshPostgres(url, 20)]);

function tally(results: PromiseSettledResult<unknown>[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of results) {
    const key =
      r.status === "fulfilled"
        ? "ok"
        : r.reason instanceof NetservaError
          ? r.reason.code
          : `unexpected: ${String(r.reason)}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

describe.each(targets)("concurrent changes on %s", (_kind, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
  });
  afterAll(async () => {
    await db.close();
  });

  it("50 concurrent adds of the same address: one success, 49 already_exists", async () => {
    const f = await mailFixture(db);
    const g = await f.generation();
    const dns = createZoneListProvider({ zones: [f.d1] });
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () =>
        createMailServices({ em: db.em(), actor: "racer", dns }).mailboxes.add({
          vnode: f.vnode,
          address: `race@${f.d1}`,
        }),
      ),
    );
    expect(tally(results)).toEqual({ ok: 1, already_exists: 49 });
    expect((await f.services.mailboxes.list(f.vnode, f.d1)).map((m) => m.ascii)).toEqual([`race@${f.d1}`]);
    expect(await f.generation()).toBe(g + 1);
    const rows = (await f.logRows()).filter((r) => r.actor === "racer");
    expect(rows.filter((r) => r.result === "ok")).toHaveLength(1);
    expect(rows.filter((r) => r.result === "refused")).toHaveLength(49);
  });

  it("a domain raced from 20 vnodes: the unique constraint makes one winner, the rest clean conflicts", async () => {
    const fixtures = await Promise.all(Array.from({ length: 20 }, () => mailFixture(db, { domains: false })));
    const domain = `raced-${fixtures[0]?.vnode ?? "x"}.example`;
    const dns = createZoneListProvider({ zones: [domain] });
    const results = await Promise.allSettled(
      fixtures.map((f) =>
        createMailServices({ em: db.em(), actor: "racer", dns }).domains.add({ vnode: f.vnode, domain }),
      ),
    );
    expect(tally(results)).toEqual({ ok: 1, already_exists: 19 });
    const generations = await Promise.all(fixtures.map((f) => f.generation()));
    expect(generations.sort()).toEqual([...Array(19).fill(0), 1]);
  });
});
