// Scale: 100,000 mailboxes on one vnode through the service layer (addMany batches, hashing
// excluded: one precomputed hash), then the cost of the lookups that must not grow with it:
// shvmail of one mailbox (< 20 ms), and adding one more mailbox.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../controller/db/open-database.ts";
import { hashPassword } from "../../common/password/index.ts";
import { databaseTargets, mailFixture } from "../helpers/mail-data-db.ts";
import type { MailFixture } from "../helpers/mail-data-db.ts";

const TOTAL = 100_000;
const BATCH = 5_000;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

describe.each(databaseTargets)("100,000 mailboxes on %s", (kind, open) => {
  let db: Database;
  let f: MailFixture;
  let rate = 0;
  beforeAll(async () => {
    db = await open();
    f = await mailFixture(db);
    const hash = await hashPassword("scale test pass");
    const started = performance.now();
    for (let i = 0; i < TOTAL; i += BATCH) {
      const mailboxes = Array.from({ length: BATCH }, (_, k) => ({
        email: `user${i + k}@${(i + k) % 10 === 0 ? f.d2 : f.d1}`,
        passwordHash: hash,
      }));
      const result = await f.services.mailboxes.addMany({ vnode: f.vnode, mailboxes });
      if (result.value.refused.length > 0) throw result.value.refused[0]?.error;
    }
    rate = TOTAL / ((performance.now() - started) / 1000);
    // Aliases pointing at some of them, so "aliases pointing here" has rows to look through.
    await db.em().execute(
      `insert into mail_valias (domain_id, source, targets)
      select d.id, 'alias' || g || '@' || d.domain, jsonb_build_array('user' || (g * 7) || '@' || d.domain, 'x@remote.example')
      from generate_series(1, 20000) g, mail_vhosts d where d.domain = ?`,
      [f.d1],
    );
  }, 600_000);
  afterAll(async () => {
    await db.close();
  });

  it("adds mailboxes at ≥ 2,000/s through the service layer (hashing excluded)", () => {
    console.log(`[scale ${kind}] addMany: ${Math.round(rate)} mailboxes/s`);
    expect(rate).toBeGreaterThan(2000);
  });

  it("shows one mailbox in < 20 ms at 100,000", async () => {
    const times: number[] = [];
    for (let i = 0; i < 25; i++) {
      const n = (i * 3989) % TOTAL;
      const email = `user${n}@${n % 10 === 0 ? f.d2 : f.d1}`;
      const t = performance.now();
      const view = await f.services.mailboxes.get(f.vnode, email);
      times.push(performance.now() - t);
      expect(view.ascii).toBe(email);
    }
    expect((await f.services.mailboxes.get(f.vnode, "user7@" + f.d1)).aliases).toEqual([`alias1@${f.d1}`]);
    console.log(
      `[scale ${kind}] shvmail one of ${TOTAL}: median ${median(times).toFixed(2)} ms, max ${Math.max(...times).toFixed(2)} ms`,
    );
    expect(median(times)).toBeLessThan(20);
  });

  it("adds one more mailbox and one alias without loading the others", async () => {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      await f.services.mailboxes.add({
        vnode: f.vnode,
        email: `late${i}@${f.d1}`,
        passwordHash:
          "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
      });
      times.push(performance.now() - t);
    }
    const t = performance.now();
    await f.services.aliases.add({
      vnode: f.vnode,
      source: `team@${f.d1}`,
      targets: [`user1@${f.d1}`, `alias3@${f.d1}`],
    });
    const aliasMs = performance.now() - t;
    console.log(
      `[scale ${kind}] add one mailbox at ${TOTAL}: median ${median(times).toFixed(2)} ms; add one alias ${aliasMs.toFixed(2)} ms`,
    );
    expect(median(times)).toBeLessThan(50);
  });
});
