// Scale: 100,000 mailboxes on one vnode through the service layer (addMany batches, hashing
// excluded: one precomputed hash), then the cost of the operations that must not grow with it,
// as counts a busy machine cannot change: statements run and rows read (EXPLAIN ANALYZE). The
// insert rate and the latencies are printed for the reader; scripts/bench-provision measures them.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../controller/db/open-database.ts";
import { hashPassword } from "../../common/password/index.ts";
import { databaseTargets, mailFixture } from "../helpers/mail-data-db.ts";
import type { MailFixture } from "../helpers/mail-data-db.ts";
import { createQueryRecorder } from "../helpers/query-cost.ts";

const TOTAL = 100_000;
const BATCH = 5_000;

// Ceilings that hold at 100 or 100,000 mailboxes; a per-mailbox statement or a table scan
// (≥ 90,000 rows in this domain) breaks them by orders of magnitude.
const BATCH_STATEMENTS = 20;
const GET_STATEMENTS = 10;
const GET_ROWS_READ = 200;
const ADD_STATEMENTS = 30;
const ADD_ROWS_READ = 200;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

describe.each(databaseTargets)("100,000 mailboxes on %s", (kind, open) => {
  let db: Database;
  let f: MailFixture;
  let rate = 0;
  let batchStatements = 0;
  const recorder = createQueryRecorder();
  beforeAll(async () => {
    db = await open({ onQuery: recorder.onQuery });
    f = await mailFixture(db);
    const hash = await hashPassword("scale test pass");
    const started = performance.now();
    for (let i = 0; i < TOTAL; i += BATCH) {
      const mailboxes = Array.from({ length: BATCH }, (_, k) => ({
        address: `user${i + k}@${(i + k) % 10 === 0 ? f.d2 : f.d1}`,
        passwordHash: hash,
      }));
      let refused: unknown;
      const cost = await recorder.measure(db, async () => {
        const result = await f.services.mailboxes.addMany({ vnode: f.vnode, mailboxes });
        refused = result.value.refused[0]?.error;
      });
      if (refused !== undefined) throw refused;
      batchStatements = Math.max(batchStatements, cost.statements.length);
    }
    rate = TOTAL / ((performance.now() - started) / 1000);
    // Aliases pointing at some of them, so "aliases pointing here" has rows to look through.
    await db.em().execute(
      `insert into mail_valias (domain_id, source, targets)
      select d.id, 'alias' || g || '@' || d.domain, jsonb_build_array('user' || (g * 7) || '@' || d.domain, 'x@remote.example')
      from generate_series(1, 20000) g, mail_vhosts d where d.domain = ?`,
      [f.d1],
    );
    // Planner statistics for the bulk-loaded tables, as PostgreSQL's autovacuum takes them. Without
    // them the planner guesses and scans all 20,000 aliases for "aliases pointing here" instead of
    // using their GIN index (the embedded PGlite has no autovacuum at all).
    await db.em().execute("analyze");
  }, 600_000);
  afterAll(async () => {
    await db.close();
  });

  it("adds mailboxes set-based: a batch of 5,000 runs a handful of statements, not one per mailbox", () => {
    console.log(`[scale ${kind}] addMany: ${Math.round(rate)} mailboxes/s, ≤ ${batchStatements} statements per batch`);
    expect(batchStatements).toBeGreaterThan(0);
    expect(batchStatements).toBeLessThanOrEqual(BATCH_STATEMENTS);
  });

  it("shows one mailbox at 100,000 reading a few index rows, not the table", async () => {
    const times: number[] = [];
    for (let i = 0; i < 25; i++) {
      const n = (i * 3989) % TOTAL;
      const email = `user${n}@${n % 10 === 0 ? f.d2 : f.d1}`;
      const t = performance.now();
      let ascii = "";
      const cost = await recorder.measure(db, async () => {
        ascii = (await f.services.mailboxes.get(f.vnode, email)).ascii;
      });
      times.push(performance.now() - t);
      expect(ascii).toBe(email);
      expect(cost.statements.length, email).toBeLessThanOrEqual(GET_STATEMENTS);
      expect(cost.rowsRead, email).toBeLessThanOrEqual(GET_ROWS_READ);
    }
    expect((await f.services.mailboxes.get(f.vnode, "user7@" + f.d1)).aliases).toEqual([`alias1@${f.d1}`]);
    console.log(
      `[scale ${kind}] shvmail one of ${TOTAL}: median ${median(times).toFixed(2)} ms, max ${Math.max(...times).toFixed(2)} ms`,
    );
  });

  it("adds one more mailbox and one alias without loading the others", async () => {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      const cost = await recorder.measure(db, () =>
        f.services.mailboxes.add({
          vnode: f.vnode,
          address: `late${i}@${f.d1}`,
          passwordHash:
            "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
        }),
      );
      times.push(performance.now() - t);
      expect(cost.statements.length).toBeLessThanOrEqual(ADD_STATEMENTS);
      expect(cost.rowsRead).toBeLessThanOrEqual(ADD_ROWS_READ);
    }
    const t = performance.now();
    const alias = await recorder.measure(db, () =>
      f.services.aliases.add({
        vnode: f.vnode,
        source: `team@${f.d1}`,
        targets: [`user1@${f.d1}`, `alias3@${f.d1}`],
      }),
    );
    const aliasMs = performance.now() - t;
    expect(alias.statements.length).toBeLessThanOrEqual(ADD_STATEMENTS);
    expect(alias.rowsRead).toBeLessThanOrEqual(ADD_ROWS_READ);
    console.log(
      `[scale ${kind}] add one mailbox at ${TOTAL}: median ${median(times).toFixed(2)} ms; add one alias ${aliasMs.toFixed(2)} ms`,
    );
  });
});
