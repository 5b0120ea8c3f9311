// Every change bumps the vnode's generation by exactly 1 and writes one command log row, in the
// same transaction; refusals change nothing and are logged too; dry runs roll back; a batch
// (an entity manager already in a transaction) runs each change as a savepoint.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../controller/db/open-database.ts";
import { createMailServices } from "../../controller/mail/create-mail-services.ts";
import { createZoneListProvider } from "../../controller/dns/zone-list-provider.ts";
import { databaseTargets, mailFixture, mailSnapshot, refusal } from "../helpers/mail-data-db.ts";

describe.each(databaseTargets)("generation and command log on %s", (_kind, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
  });
  afterAll(async () => {
    await db.close();
  });

  it("each change: generation + 1 and one log row with actor, command, request id, generation, args, duration", async () => {
    const f = await mailFixture(db);
    const g0 = await f.generation();
    const rows0 = (await f.logRows()).length;
    const steps = [
      () =>
        f.services.mailboxes.add({
          vnode: f.vnode,
          address: `a@${f.d1}`,
          password: "a secret pass",
          requestId: "req-1",
        }),
      () => f.services.aliases.add({ vnode: f.vnode, source: `x@${f.d1}`, targets: `a@${f.d1}` }),
      () => f.services.mailboxes.change({ vnode: f.vnode, address: `a@${f.d1}`, quota: "2G" }),
      () => f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name: "VHOST", value: "w" }),
      () => f.services.domains.change({ vnode: f.vnode, domain: f.d2, active: false }),
      () => f.services.aliases.remove({ vnode: f.vnode, source: `x@${f.d1}` }),
      () => f.services.mailboxes.remove({ vnode: f.vnode, address: `a@${f.d1}` }),
      () => f.services.domains.remove({ vnode: f.vnode, domain: f.d2 }),
    ];
    for (const [i, step] of steps.entries()) {
      const result = await step();
      expect(result.generation).toBe(g0 + i + 1);
      expect(await f.generation()).toBe(g0 + i + 1);
      expect(result.changes.length).toBeGreaterThan(0);
      expect(result.dryRun).toBe(false);
    }
    const rows = (await f.logRows()).slice(rows0);
    expect(rows.map((r) => [r.command, r.result, Number(r.generation)])).toEqual([
      ["addvmail", "ok", g0 + 1],
      ["addvalias", "ok", g0 + 2],
      ["chvmail", "ok", g0 + 3],
      ["chvconf", "ok", g0 + 4],
      ["chvmaildomain", "ok", g0 + 5],
      ["delvalias", "ok", g0 + 6],
      ["delvmail", "ok", g0 + 7],
      ["delvmaildomain", "ok", g0 + 8],
    ]);
    expect(rows[0]).toMatchObject({ actor: "tester", requestId: "req-1", vnodeName: f.vnode });
    expect(rows[0]?.args).toMatchObject({ email: `a@${f.d1}`, password: "given" });
    expect(JSON.stringify(rows.map((r) => r.args))).not.toContain("a secret pass");
    expect(rows.every((r) => Number(r.durationMs) >= 0 && r.requestId.length > 0)).toBe(true);
  });

  it("a refused or failing change leaves the generation and the data unchanged, and is logged", async () => {
    const f = await mailFixture(db);
    await f.services.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}` });
    const before = await mailSnapshot(db, f.vnodeId);
    const g = await f.generation();
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}` }),
      "already_exists",
      /already exists/,
    );
    await refusal(f.services.mailboxes.add({ vnode: f.vnode, address: "bad address" }), "invalid_argument", /^email:/);
    // Refused inside the transaction, after the generation bump: rolled back.
    await f.services.aliases.add({ vnode: f.vnode, source: `@${f.d2}`, targets: "x@remote.example" });
    const mid = await mailSnapshot(db, f.vnodeId);
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `admin@${f.d2}`, catchAll: true }),
      "already_exists",
      /already has a catch-all/,
    );
    expect(await mailSnapshot(db, f.vnodeId)).toBe(mid);
    expect(await f.generation()).toBe(g + 1);
    expect(before).not.toBe(mid);
    const rows = (await f.logRows()).slice(-4);
    expect(rows.map((r) => [r.command, r.result, r.generation])).toEqual([
      ["addvmail", "refused", null],
      ["addvmail", "refused", null],
      ["addvalias", "ok", g + 1],
      ["addvmail", "refused", null],
    ]);
    expect(rows[0]?.error).toMatch(/already exists/);
  });

  it("the change, the generation and the log row commit together: a failing log write undoes all", async () => {
    const f = await mailFixture(db);
    const em = db.em();
    // A trigger that fails the command log insert of one address, after the mailbox row is written.
    await em.execute(`create or replace function nsm_test_fail_log() returns trigger language plpgsql as $$
      begin if new.args->>'email' like 'boom@%' then raise exception 'log write failed'; end if; return new; end $$`);
    await em.execute("drop trigger if exists nsm_test_fail_log on command_log");
    await em.execute(
      "create trigger nsm_test_fail_log before insert on command_log for each row execute function nsm_test_fail_log()",
    );
    try {
      const before = await mailSnapshot(db, f.vnodeId);
      await refusal(
        f.services.mailboxes.add({ vnode: f.vnode, address: `boom@${f.d1}` }),
        "internal",
        /log write failed/,
      );
      expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
    } finally {
      await em.execute("drop trigger if exists nsm_test_fail_log on command_log");
    }
    await f.services.mailboxes.add({ vnode: f.vnode, address: `fine@${f.d1}` });
  });

  it("refuses unknown and revoked vnodes; pending ones are fine", async () => {
    const f = await mailFixture(db);
    await refusal(
      f.services.mailboxes.add({ vnode: "no-such-vnode", address: `a@${f.d1}` }),
      "not_found",
      /vnode 'no-such-vnode' not found/,
    );
    await refusal(f.services.mailboxes.add({ vnode: "../x", address: `a@${f.d1}` }), "invalid_argument", /^vnode:/);
    const revoked = await mailFixture(db, { domains: false, status: "revoked" });
    await refusal(
      revoked.services.domains.add({ vnode: revoked.vnode, domain: revoked.d1 }),
      "failed_precondition",
      /revoked/,
    );
    expect(await revoked.generation()).toBe(0);
    const pending = await mailFixture(db, { domains: false, status: "pending" });
    await pending.services.domains.add({ vnode: pending.vnode, domain: pending.d1 });
    expect(await pending.generation()).toBe(1);
  });

  it("a dry run computes the changes, changes nothing, keeps the generation, and is logged", async () => {
    const f = await mailFixture(db);
    const before = await mailSnapshot(db, f.vnodeId);
    const g = await f.generation();
    const dry = await f.services.mailboxes.add({
      vnode: f.vnode,
      address: `admin@${f.d1}`,
      catchAll: true,
      dryRun: true,
    });
    expect(dry).toMatchObject({ dryRun: true, generation: g, vnode: f.vnode });
    expect(dry.value.password).toBeUndefined(); // never stored, so never shown
    expect(dry.changes.map((c) => c.kind.case)).toEqual(["upsertMailbox", "upsertAlias"]);
    expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
    const row = (await f.logRows()).at(-1);
    expect(row).toMatchObject({ command: "addvmail", result: "ok" });
    expect(row?.args).toMatchObject({ dryRun: true });
    await refusal(
      f.services.domains.remove({ vnode: f.vnode, domain: `x${f.d1}`, dryRun: true }),
      "not_found",
      /not hosted/,
    );
  });

  it("in a caller's transaction each change is a savepoint: a refusal undoes only itself", async () => {
    const f = await mailFixture(db);
    const g = await f.generation();
    const outcomes = await db.em().transactional(async (em) => {
      const s = createMailServices({ em, actor: "import", dns: createZoneListProvider({ zones: [f.d1, f.d2] }) });
      const results: string[] = [];
      for (const email of [`a@${f.d1}`, `a@${f.d1}`, `b@${f.d1}`]) {
        results.push(
          await s.mailboxes.add({ vnode: f.vnode, address: email, password: "batch password" }).then(
            () => "ok",
            (e: Error) => e.message,
          ),
        );
      }
      return results;
    });
    expect(outcomes[0]).toBe("ok");
    expect(outcomes[1]).toMatch(/already exists/);
    expect(outcomes[2]).toBe("ok");
    expect(await f.generation()).toBe(g + 2);
    expect((await f.services.mailboxes.list(f.vnode, f.d1)).map((m) => m.ascii)).toEqual([`a@${f.d1}`, `b@${f.d1}`]);
    expect((await f.logRows()).slice(-3).map((r) => [r.actor, r.result])).toEqual([
      ["import", "ok"],
      ["import", "refused"],
      ["import", "ok"],
    ]);
  });

  it("addMany: one transaction, one generation, one log row; refused items reported, the rest stored", async () => {
    const f = await mailFixture(db);
    await f.services.domains.change({ vnode: f.vnode, domain: f.d2, maxMailboxes: 1 });
    await f.services.aliases.add({ vnode: f.vnode, source: `taken@${f.d1}`, targets: "x@remote.example" });
    const g = await f.generation();
    const result = await f.services.mailboxes.addMany({
      vnode: f.vnode,
      mailboxes: [
        { address: `a@${f.d1}`, quota: "2G", active: false, sieve: "keep;" },
        { address: `A@${f.d1}` },
        { address: "bad@@x" },
        { address: `taken@${f.d1}` },
        { address: `c@${f.d2}` },
        { address: `d@${f.d2}` },
        { address: `admin@${f.d1}`, catchAll: true, password: "given password" },
      ],
    });
    expect(result.generation).toBe(g + 1);
    expect(await f.generation()).toBe(g + 1);
    expect(
      result.value.added.map((a) => [a.index, a.mailbox.ascii, a.mailbox.active, a.password === undefined]),
    ).toEqual([
      [0, `a@${f.d1}`, false, false],
      [4, `c@${f.d2}`, true, false],
      [6, `admin@${f.d1}`, true, true],
    ]);
    expect(result.value.refused.map((r) => [r.index, r.error.code])).toEqual([
      [1, "already_exists"],
      [2, "invalid_argument"],
      [3, "already_exists"],
      [5, "failed_precondition"],
    ]);
    expect(result.changes.map((c) => c.kind.case)).toEqual([
      "upsertMailbox",
      "upsertMailbox",
      "upsertMailbox",
      "upsertAlias",
    ]);
    expect(await f.services.mailboxes.get(f.vnode, `a@${f.d1}`)).toMatchObject({
      quota: 2 * 1024 ** 3,
      active: false,
      hasSieve: true,
    });
    const row = (await f.logRows()).at(-1);
    expect(row).toMatchObject({ command: "addvmail", result: "ok", generation: g + 1 });
    expect(row?.args).toMatchObject({ batch: 7 });
    // All refused: nothing changes, not even the generation.
    const none = await f.services.mailboxes.addMany({ vnode: f.vnode, mailboxes: [{ address: `a@${f.d1}` }] });
    expect(none).toMatchObject({ generation: g + 1, changes: [], dryRun: false });
    expect(none.value.refused[0]?.error.code).toBe("already_exists");
    expect(await f.generation()).toBe(g + 1);
    expect((await f.logRows()).at(-1)).toMatchObject({ result: "refused" });
    await refusal(
      f.services.mailboxes.addMany({ vnode: f.vnode, mailboxes: [] }),
      "invalid_argument",
      /^mailboxes: no mailboxes/,
    );
  });
});
