// Mail domains: names (IDNA), the DNS-zone rule, duplicates, limits, and deletion rules.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../controller/db/open-database.ts";
import { CommandLog } from "../../controller/db/entities/index.ts";
import { databaseTargets, mailFixture, mailSnapshot, refusal } from "../helpers/mail-data-db.ts";

describe.each(databaseTargets)("mail domains on %s", (_kind, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
  });
  afterAll(async () => {
    await db.close();
  });

  it("stores the A-label in lower case and shows the U-label", async () => {
    const f = await mailFixture(db, { domains: false });
    const tag = f.d1.slice(3, -8);
    const s = f.with({ zones: ["example"] });
    const added = await s.domains.add({ vnode: f.vnode, domain: `BÜCHER-${tag}.Example` });
    expect(added.value.ascii).toMatch(/^xn--bcher-.*\.example$/);
    expect(added.value.domain).toBe(`bücher-${tag}.example`);
    expect(added.domainChanged).toBe(true);
    expect(added.changes.map((c) => [c.kind.case, c.kind.case === "upsertDomain" ? c.kind.value.domain : ""])).toEqual([
      ["upsertDomain", added.value.ascii],
    ]);
    const again = await s.domains.get(f.vnode, added.value.ascii);
    expect(again.domain).toBe(`bücher-${tag}.example`);
    expect(again.defaultQuota).toBe(1024 ** 3);
    await refusal(
      s.domains.add({ vnode: f.vnode, domain: `bücher-${tag}.example` }),
      "already_exists",
      /already hosted/,
    );
  });

  it.each([
    ["../etc", /domain/],
    ["exa mple.com", /domain/],
    ["example.com.", /trailing dot/],
    ["раураl.com", /mixes|Cyrillic/],
    ["a$(id).com", /domain/],
    ["x\r\n.com", /domain/],
    ["a".repeat(64) + ".com", /63|label/],
  ])("refuses the domain %j naming the field", async (bad, message) => {
    const f = await mailFixture(db, { domains: false });
    const before = await mailSnapshot(db, f.vnodeId);
    const error = await refusal(f.services.domains.add({ vnode: f.vnode, domain: bad }), "invalid_argument", message);
    expect(error.field).toBe("domain");
    expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
  });

  it("needs a DNS zone unless --skip-dns-check, which the command log records", async () => {
    const f = await mailFixture(db, { domains: false });
    const domain = `nozone-${f.vnode}.test`;
    await refusal(
      f.services.domains.add({ vnode: f.vnode, domain }),
      "failed_precondition",
      /no DNS zone.*--skip-dns-check/,
    );
    expect(await f.services.domains.list(f.vnode)).toEqual([]);
    // A subdomain is covered by its parent zone.
    await f.services.domains.add({ vnode: f.vnode, domain: `mail.${f.d1}` });
    const skipped = await f.services.domains.add({ vnode: f.vnode, domain, skipDnsCheck: true });
    expect(skipped.value.ascii).toBe(domain);
    const rows = await db
      .em()
      .find(CommandLog, { vnodeName: f.vnode, command: "addvmaildomain" }, { orderBy: { id: "asc" } });
    expect(rows.map((r) => [r.result, r.args?.["skipDnsCheck"]])).toEqual([
      ["refused", false],
      ["ok", false],
      ["ok", true],
    ]);
  });

  it("refuses a domain already hosted on another vnode, naming neither silently", async () => {
    const a = await mailFixture(db);
    const b = await mailFixture(db, { domains: false });
    await refusal(
      b.with({ zones: [a.d1] }).domains.add({ vnode: b.vnode, domain: a.d1 }),
      "already_exists",
      /already hosted on another vnode/,
    );
    await refusal(b.services.domains.get(b.vnode, a.d1), "not_found", new RegExp(`hosted on vnode '${a.vnode}'`));
  });

  it("will not delete a domain with active mailboxes; says how many and what to do", async () => {
    const f = await mailFixture(db);
    for (const u of ["a", "b", "c"]) await f.services.mailboxes.add({ vnode: f.vnode, address: `${u}@${f.d1}` });
    await f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name: "MPWD", value: "secret-pass-1" });
    await f.services.aliases.add({ vnode: f.vnode, source: `info@${f.d1}`, targets: `a@${f.d1}` });
    const before = await mailSnapshot(db, f.vnodeId);
    await refusal(
      f.services.domains.remove({ vnode: f.vnode, domain: f.d1 }),
      "failed_precondition",
      /3 active mailboxes: delete them \(delvmail\) or deactivate them/,
    );
    expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
    for (const u of ["a", "b"])
      await f.services.mailboxes.change({ vnode: f.vnode, address: `${u}@${f.d1}`, active: false });
    await refusal(
      f.services.domains.remove({ vnode: f.vnode, domain: f.d1 }),
      "failed_precondition",
      /1 active mailbox: delete it/,
    );
    await f.services.mailboxes.remove({ vnode: f.vnode, address: `c@${f.d1}` });
    const removed = await f.services.domains.remove({ vnode: f.vnode, domain: f.d1, keepMaildir: true });
    expect(removed.changes.map((c) => `${c.kind.case}:${String(c.kind.value)}:${c.keepMaildir}`)).toEqual([
      `deleteAlias:info@${f.d1}:false`,
      `deleteMailbox:a@${f.d1}:true`,
      `deleteMailbox:b@${f.d1}:true`,
      `deleteDomain:${f.d1}:true`,
    ]);
    expect(removed.domainChanged).toBe(true);
    expect((await f.services.domains.list(f.vnode)).map((d) => d.ascii)).toEqual([f.d2]);
    expect(
      await db
        .em()
        .getConnection()
        .execute(
          "select count(*)::int as n from vconfs v join mail_vhosts d on d.id = v.domain_id where d.domain = ?",
          [f.d1],
        ),
    ).toEqual([{ n: 0 }]);
  });

  it("will not delete a domain that aliases elsewhere still point into", async () => {
    const f = await mailFixture(db);
    await f.services.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}` });
    await f.services.aliases.add({ vnode: f.vnode, source: `fwd@${f.d2}`, targets: `a@${f.d1}` });
    await f.services.mailboxes.change({ vnode: f.vnode, address: `a@${f.d1}`, active: false });
    await refusal(
      f.services.domains.remove({ vnode: f.vnode, domain: f.d1 }),
      "failed_precondition",
      new RegExp(`fwd@${f.d2}`),
    );
  });

  it("enforces max mailboxes and max aliases, and will not lower limits under what exists", async () => {
    const f = await mailFixture(db);
    await f.services.domains.change({ vnode: f.vnode, domain: f.d1, maxMailboxes: 2, maxAliases: 1 });
    await f.services.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}` });
    await f.services.mailboxes.add({ vnode: f.vnode, address: `b@${f.d1}` });
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `c@${f.d1}` }),
      "failed_precondition",
      /already has 2 mailboxes, its limit/,
    );
    await f.services.aliases.add({ vnode: f.vnode, source: `x@${f.d1}`, targets: `a@${f.d1}` });
    await refusal(
      f.services.aliases.add({ vnode: f.vnode, source: `y@${f.d1}`, targets: `a@${f.d1}` }),
      "failed_precondition",
      /already has 1 aliases/,
    );
    await refusal(
      f.services.domains.change({ vnode: f.vnode, domain: f.d1, maxMailboxes: 1 }),
      "failed_precondition",
      /has 2 mailboxes/,
    );
    await f.services.mailboxes.change({ vnode: f.vnode, address: `a@${f.d1}`, quota: "5G" });
    await refusal(
      f.services.domains.change({ vnode: f.vnode, domain: f.d1, maxQuota: "2G" }),
      "failed_precondition",
      /larger quotas than 2G: a@/,
    );
    await refusal(
      f.services.domains.change({ vnode: f.vnode, domain: f.d1, defaultQuota: "0", maxQuota: "10G" }),
      "invalid_argument",
      /default quota unlimited is over/,
    );
    await refusal(f.services.domains.change({ vnode: f.vnode, domain: f.d1 }), "invalid_argument", /nothing to change/);
    await refusal(
      f.services.domains.change({ vnode: f.vnode, domain: f.d1, maxMailboxes: -1 }),
      "invalid_argument",
      /maxMailboxes/,
    );
    const changed = await f.services.domains.change({ vnode: f.vnode, domain: f.d1, active: false });
    expect(changed.value.active).toBe(false);
    expect(changed.domainChanged).toBe(true);
    expect(changed.value.mailboxes).toBe(2);
  });
});
