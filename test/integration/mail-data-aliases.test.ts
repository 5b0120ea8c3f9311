// Aliases and catch-alls: valid sources and targets (remote allowed, local must exist), no
// duplicates, no shadowing of mailboxes, no loops (direct, longer, via a catch-all, self).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../controller/db/open-database.ts";
import { databaseTargets, mailFixture, mailSnapshot, refusal } from "../helpers/mail-data-db.ts";

describe.each(databaseTargets)("aliases on %s", (_kind, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
  });
  afterAll(async () => {
    await db.close();
  });

  it("adds an alias to local and remote targets, stored canonical and in order", async () => {
    const f = await mailFixture(db);
    await f.services.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}` });
    const added = await f.services.aliases.add({
      vnode: f.vnode,
      source: `Info@${f.d1}`,
      targets: ` A@${f.d1.toUpperCase()} ,bob@Gmail.COM`,
    });
    expect(added.value).toMatchObject({
      source: `info@${f.d1}`,
      targets: [`a@${f.d1}`, "bob@gmail.com"],
      active: true,
    });
    const change = added.changes[0];
    expect(change?.kind.case === "upsertAlias" && change.kind.value.targets).toEqual([`a@${f.d1}`, "bob@gmail.com"]);
    await refusal(
      f.services.aliases.add({ vnode: f.vnode, source: `info@${f.d1}`, targets: "x@remote.example" }),
      "already_exists",
      /already exists/,
    );
    await refusal(
      f.services.aliases.add({ vnode: f.vnode, source: `a@${f.d1}`, targets: "x@remote.example" }),
      "already_exists",
      /is a mailbox; an alias may not shadow it/,
    );
  });

  it.each([
    ["source", "*@D1", "x@remote.example", /catch-all is written '@example.com'/],
    ["source", "info@", "x@remote.example", /no domain/],
    ["source", "a|b@D1", "x@remote.example", /'\|'/],
    ["targets", "info@D1", "", /empty/],
    ["targets", "info@D1", "x@remote.example,,y@remote.example", /stray comma/],
    ["targets", "info@D1", "x@remote.example,X@remote.example", /listed twice/],
    ["targets", "info@D1", "|/bin/sh@remote.example", /target 1/],
    ["targets", "info@D1", "user@%{host}.example", /target 1/],
    ["targets", "info@D1", "ghost@D1", /neither a mailbox nor an alias/],
    ["targets", "info@D1", "info@D1", /lists itself/],
  ])("refuses bad %s (%j → %j)", async (field, source, targets, message) => {
    const f = await mailFixture(db);
    const before = await mailSnapshot(db, f.vnodeId);
    const error = await refusal(
      f.services.aliases.add({
        vnode: f.vnode,
        source: source.replace("D1", f.d1),
        targets: targets.replaceAll("D1", f.d1),
      }),
      "invalid_argument",
      message,
    );
    expect(error.field).toBe(field);
    expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
  });

  it("finds loops before storing them: a→b→a, longer cycles, and changes that would close one", async () => {
    const f = await mailFixture(db);
    await f.services.mailboxes.add({ vnode: f.vnode, address: `box@${f.d1}` });
    await f.services.aliases.add({ vnode: f.vnode, source: `a@${f.d1}`, targets: `box@${f.d1}` });
    await f.services.aliases.add({ vnode: f.vnode, source: `b@${f.d1}`, targets: `a@${f.d1}` });
    await f.services.aliases.add({ vnode: f.vnode, source: `c@${f.d2}`, targets: [`b@${f.d1}`, "x@remote.example"] });
    const before = await mailSnapshot(db, f.vnodeId);
    await refusal(
      f.services.aliases.change({ vnode: f.vnode, source: `a@${f.d1}`, targets: `b@${f.d1}` }),
      "invalid_argument",
      new RegExp(`alias loop: a@${f.d1} → b@${f.d1} → a@${f.d1}`),
    );
    await refusal(
      f.services.aliases.change({ vnode: f.vnode, source: `a@${f.d1}`, targets: [`box@${f.d1}`, `c@${f.d2}`] }),
      "invalid_argument",
      new RegExp(`a@${f.d1} → c@${f.d2} → b@${f.d1} → a@${f.d1}`),
    );
    expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
    // Not a loop: two paths to the same mailbox.
    await f.services.aliases.add({
      vnode: f.vnode,
      source: `d@${f.d1}`,
      targets: [`a@${f.d1}`, `b@${f.d1}`, `box@${f.d1}`],
    });
  });

  it("finds a loop through a catch-all", async () => {
    const f = await mailFixture(db);
    // fwd@d1 forwards to an address on a domain not hosted yet (remote, so allowed)...
    const d3 = `d3-${f.vnode}.example`;
    await f.services.aliases.add({ vnode: f.vnode, source: `fwd@${f.d1}`, targets: `z@${d3}` });
    // ...then that domain arrives with a catch-all back to fwd@d1: z@d3 would circle.
    const s = f.with({ zones: [d3] });
    await s.domains.add({ vnode: f.vnode, domain: d3 });
    await refusal(
      s.aliases.add({ vnode: f.vnode, source: `@${d3}`, targets: `fwd@${f.d1}` }),
      "invalid_argument",
      new RegExp(`alias loop: @${d3} → fwd@${f.d1} → z@${d3} → @${d3}`),
    );
    await s.mailboxes.add({ vnode: f.vnode, address: `z@${d3}` });
    await s.aliases.add({ vnode: f.vnode, source: `@${d3}`, targets: `fwd@${f.d1}` }); // z@d3 is a mailbox now: no loop
  });

  it("changes targets and active, refuses empty changes, and will not delete an alias others point at", async () => {
    const f = await mailFixture(db);
    await f.services.mailboxes.add({ vnode: f.vnode, address: `box@${f.d1}` });
    await f.services.aliases.add({ vnode: f.vnode, source: `a@${f.d1}`, targets: `box@${f.d1}` });
    await f.services.aliases.add({ vnode: f.vnode, source: `b@${f.d1}`, targets: `a@${f.d1}` });
    const off = await f.services.aliases.change({ vnode: f.vnode, source: `a@${f.d1}`, active: false });
    expect(off.value.active).toBe(false);
    expect(off.changes[0]?.kind.case === "upsertAlias" && off.changes[0].kind.value.active).toBe(false);
    await refusal(
      f.services.aliases.change({ vnode: f.vnode, source: `a@${f.d1}` }),
      "invalid_argument",
      /nothing to change/,
    );
    await refusal(
      f.services.aliases.remove({ vnode: f.vnode, source: `a@${f.d1}` }),
      "failed_precondition",
      new RegExp(`target of b@${f.d1}`),
    );
    await f.services.aliases.remove({ vnode: f.vnode, source: `b@${f.d1}` });
    const removed = await f.services.aliases.remove({ vnode: f.vnode, source: `a@${f.d1}` });
    expect(removed.changes.map((c) => [c.kind.case, c.kind.value])).toEqual([["deleteAlias", `a@${f.d1}`]]);
    await refusal(f.services.aliases.get(f.vnode, `a@${f.d1}`), "not_found", /no alias/);
  });

  it("lists by vnode, domain and source", async () => {
    const f = await mailFixture(db);
    await f.services.aliases.add({ vnode: f.vnode, source: `b@${f.d1}`, targets: "x@remote.example" });
    await f.services.aliases.add({ vnode: f.vnode, source: `@${f.d2}`, targets: "x@remote.example" });
    await f.services.aliases.add({ vnode: f.vnode, source: `a@${f.d1}`, targets: "x@remote.example" });
    expect((await f.services.aliases.list(f.vnode)).map((a) => a.source)).toEqual([
      `@${f.d2}`,
      `a@${f.d1}`,
      `b@${f.d1}`,
    ]);
    expect((await f.services.aliases.list(f.vnode, { domain: `@${f.d1}` })).map((a) => a.source)).toEqual([
      `a@${f.d1}`,
      `b@${f.d1}`,
    ]);
    expect((await f.services.aliases.list(f.vnode, { source: `@${f.d2}` })).map((a) => a.source)).toEqual([`@${f.d2}`]);
  });
});
