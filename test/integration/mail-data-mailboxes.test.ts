// Mailboxes: passwords (generated, given, imported hashes; stored only as hashes), names,
// duplicates and shadowing, quotas (domain limit, MQUOTA default, vnode capacity), the admin@
// catch-all, changes, and what deletion does to the aliases that point at a mailbox.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../controller/db/open-database.ts";
import { VMailbox } from "../../controller/db/entities/index.ts";
import { PASSWORD_ALPHABET, hashPassword, verifyPassword } from "../../common/password/index.ts";
import { addressParses } from "../../common/validation/index.ts";
import { waitUntil } from "../../agent/process.ts";
import { databaseTargets, mailFixture, mailSnapshot, refusal } from "../helpers/mail-data-db.ts";

const G = 1024 ** 3;
const HASH = `{SHA512-CRYPT}$6$abcdefgh$${"x".repeat(86)}`;

describe.each(databaseTargets)("mailboxes on %s", (_kind, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
  });
  afterAll(async () => {
    await db.close();
  });

  const stored = (address: string) => db.em().findOneOrFail(VMailbox, { ascii: address });

  it("generates a password once (≥ 16 CSPRNG characters) and stores only its hash", async () => {
    const f = await mailFixture(db);
    const added = await f.services.mailboxes.add({
      vnode: f.vnode,
      address: `Jane.Doe@${f.d1.toUpperCase()}`,
      name: "Jane Doe",
    });
    const password = added.value.password ?? "";
    expect(password.length).toBeGreaterThanOrEqual(16);
    expect([...password].every((c) => PASSWORD_ALPHABET.includes(c))).toBe(true);
    const row = await stored(`jane.doe@${f.d1}`);
    expect(row.passwordHash).toMatch(/^\{SHA512-CRYPT\}\$6\$/);
    expect(row.passwordHash).not.toContain(password);
    expect(await verifyPassword(password, row.passwordHash)).toBe(true);
    expect(added.value.mailbox).toMatchObject({
      ascii: `jane.doe@${f.d1}`,
      name: "Jane Doe",
      quota: G,
      usage: null,
      active: true,
      maildir: `/srv/${f.d1}/msg/jane.doe/Maildir`,
      aliases: [],
    });
    const change = added.changes[0];
    expect(change?.kind.case).toBe("upsertMailbox");
    if (change?.kind.case === "upsertMailbox") {
      expect(change.kind.value).toMatchObject({
        address: `jane.doe@${f.d1}`,
        passwordHash: row.passwordHash,
        quotaBytes: BigInt(G),
        active: true,
        displayName: "Jane Doe",
      });
    }
    // Shown once: reading it back never returns a password.
    expect(JSON.stringify(await f.services.mailboxes.get(f.vnode, `jane.doe@${f.d1}`))).not.toContain(password);
    expect(JSON.stringify((await f.logRows()).map((r) => r.args))).not.toContain(password);
  });

  it("parses the address once per call, from the input to the change for the agent", async () => {
    const f = await mailFixture(db);
    const once = async (call: () => Promise<unknown>): Promise<number> => {
      const before = addressParses.count;
      await call();
      return addressParses.count - before;
    };
    const email = `Once@${f.d1.toUpperCase()}`;
    expect(await once(() => f.services.mailboxes.add({ vnode: f.vnode, address: email, passwordHash: HASH }))).toBe(1);
    expect(await once(() => f.services.mailboxes.get(f.vnode, email))).toBe(1);
    expect(await once(() => f.services.mailboxes.change({ vnode: f.vnode, address: email, quota: "2G" }))).toBe(1);
    expect(await once(() => f.services.mailboxes.remove({ vnode: f.vnode, address: email }))).toBe(1);
  });

  it("takes an operator's password (ARGON2ID on request) or an imported hash, never returning them", async () => {
    const f = await mailFixture(db);
    const given = await f.services.mailboxes.add({
      vnode: f.vnode,
      address: `a@${f.d1}`,
      password: "correct horse 42",
      scheme: "ARGON2ID",
    });
    expect(given.value.password).toBeUndefined();
    const a = await stored(`a@${f.d1}`);
    expect(a.passwordHash).toMatch(/^\{ARGON2ID\}\$argon2id\$v=19\$m=65536,t=3,p=1\$/);
    expect(await verifyPassword("correct horse 42", a.passwordHash)).toBe(true);
    const hash = (await hashPassword("imported pass")).replace("{SHA512-CRYPT}", "");
    await f.services.mailboxes.add({ vnode: f.vnode, address: `b@${f.d1}`, passwordHash: hash });
    expect((await stored(`b@${f.d1}`)).passwordHash).toBe(`{SHA512-CRYPT}${hash}`);
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `c@${f.d1}`, passwordHash: "{PLAIN}secret" }),
      "invalid_argument",
      /passwordHash/,
    );
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `c@${f.d1}`, password: "short" }),
      "invalid_argument",
      /^password: .*at least 8/,
    );
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `c@${f.d1}`, password: "x".repeat(10), passwordHash: hash }),
      "invalid_argument",
      /^password: give one/,
    );
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `c@${f.d1}`, scheme: "MD5" as "ARGON2ID" }),
      "invalid_argument",
      /^scheme:/,
    );
    const log = JSON.stringify((await f.logRows()).map((r) => r.args));
    expect(log).not.toContain("correct horse");
    expect(log).toContain("hash given");
  });

  it.each([
    ["email", { address: "../../etc/passwd@x.example" }, /email/],
    ["email", { address: "a b@x.example" }, /email/],
    ["email", { address: "a%b@x.example" }, /'%'/],
    ["email", { address: "$(reboot)@x.example" }, /email/],
    ["email", { address: "a\n@x.example" }, /email/],
    ["quota", { address: "q@D1", quota: "-1G" }, /sign/],
    ["quota", { address: "q@D1", quota: "2E" }, /not a size/],
    ["quota", { address: "q@D1", quota: "2000T" }, /1 PiB/],
    ["name", { address: "q@D1", name: "Evil\r\nBcc: x" }, /display name/],
    ["sieve", { address: "q@D1", sieve: "\u0000" }, /sieve/],
    ["catchAll", { address: "bob@D1", catchAll: true }, /only an admin@ mailbox/],
  ])("refuses bad %s and changes nothing", async (field, input, message) => {
    const f = await mailFixture(db);
    const before = await mailSnapshot(db, f.vnodeId);
    const email = input.address.replace("D1", f.d1);
    const error = await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, ...input, address: email }),
      "invalid_argument",
      message,
    );
    expect(error.field).toBe(field);
    expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
  });

  it("refuses duplicates, and addresses taken by an alias (no shadowing)", async () => {
    const f = await mailFixture(db);
    await f.services.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}` });
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `A@${f.d1}` }),
      "already_exists",
      /mailbox a@.* already exists/,
    );
    await f.services.aliases.add({ vnode: f.vnode, source: `info@${f.d1}`, targets: `a@${f.d1}` });
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `info@${f.d1}` }),
      "already_exists",
      /is an alias \(→ a@.*\); a mailbox cannot share/,
    );
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `a@nowhere-${f.vnode}.example` }),
      "not_found",
      /not hosted; add it first/,
    );
    const other = await mailFixture(db);
    await refusal(
      other.services.mailboxes.add({ vnode: other.vnode, address: `z@${f.d1}` }),
      "not_found",
      new RegExp(`hosted on vnode '${f.vnode}'`),
    );
  });

  it("applies quotas: units, the domain's max, MQUOTA as default", async () => {
    const f = await mailFixture(db);
    await f.services.domains.change({ vnode: f.vnode, domain: f.d1, maxQuota: "10G" });
    const q = await f.services.mailboxes.add({ vnode: f.vnode, address: `q1@${f.d1}`, quota: "1.5G" });
    expect(q.value.mailbox.quota).toBe(1.5 * G);
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `q2@${f.d1}`, quota: "11G" }),
      "invalid_argument",
      /over the limit of 10G per mailbox/,
    );
    await refusal(
      f.services.mailboxes.add({ vnode: f.vnode, address: `q2@${f.d1}`, quota: "0" }),
      "invalid_argument",
      /unlimited is over the limit/,
    );
    await f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name: "MQUOTA", value: "3G" });
    expect((await f.services.mailboxes.add({ vnode: f.vnode, address: `q3@${f.d1}` })).value.mailbox.quota).toBe(3 * G);
    await refusal(
      f.services.mailboxes.change({ vnode: f.vnode, address: `q3@${f.d1}`, quota: "12G" }),
      "invalid_argument",
      /over the limit/,
    );
  });

  it("keeps the sum of quotas within the vnode's reported storage unless the domain overcommits", async () => {
    const f = await mailFixture(db);
    const s = f.with({ capacity: 10 * G });
    await s.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}`, quota: "6G" });
    const before = await mailSnapshot(db, f.vnodeId);
    await refusal(
      s.mailboxes.add({ vnode: f.vnode, address: `b@${f.d1}`, quota: "5G" }),
      "failed_precondition",
      /10G of mail storage and 6G is already promised to mailboxes; 5G more does not fit/,
    );
    await refusal(
      s.mailboxes.add({ vnode: f.vnode, address: `b@${f.d1}`, quota: "0" }),
      "invalid_argument",
      /unlimited quota cannot be guaranteed/,
    );
    expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
    await s.mailboxes.add({ vnode: f.vnode, address: `b@${f.d1}`, quota: "4G" });
    await refusal(
      s.mailboxes.change({ vnode: f.vnode, address: `a@${f.d1}`, quota: "7G" }),
      "failed_precondition",
      /does not fit/,
    );
    await s.mailboxes.change({ vnode: f.vnode, address: `a@${f.d1}`, quota: "5G" }); // shrinking always fits
    await s.domains.change({ vnode: f.vnode, domain: f.d2, overcommit: true });
    await s.mailboxes.add({ vnode: f.vnode, address: `c@${f.d2}`, quota: "50G" });
    // Unknown capacity (no agent report yet): no storage rule.
    await f.services.mailboxes.add({ vnode: f.vnode, address: `d@${f.d1}`, quota: "100G" });
  });

  it("gives admin@ the @domain catch-all only when asked", async () => {
    const f = await mailFixture(db);
    const plain = await f.services.mailboxes.add({ vnode: f.vnode, address: `admin@${f.d1}` });
    expect(plain.value.mailbox.aliases).toEqual([]);
    expect(await f.services.aliases.list(f.vnode, { domain: f.d1 })).toEqual([]);
    const withCatchAll = await f.services.mailboxes.add({ vnode: f.vnode, address: `admin@${f.d2}`, catchAll: true });
    expect(withCatchAll.value.mailbox.aliases).toEqual([`@${f.d2}`]);
    expect(withCatchAll.changes.map((c) => c.kind.case)).toEqual(["upsertMailbox", "upsertAlias"]);
    expect((await f.services.aliases.get(f.vnode, `@${f.d2}`)).targets).toEqual([`admin@${f.d2}`]);
    expect((await f.services.mailboxes.get(f.vnode, `admin@${f.d2}`)).aliases).toEqual([`@${f.d2}`]);
  });

  it("changes password (passwordChangedAt moves), active, name and sieve; refuses an empty change", async () => {
    const f = await mailFixture(db);
    await f.services.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}`, password: "first password" });
    const before = await stored(`a@${f.d1}`);
    // The clock must move past the first change's timestamp: waited for, not slept.
    const at = before.passwordChangedAt.getTime();
    await waitUntil("the clock to pass the first change", 1_000, () => Date.now() > at + 1, 1);
    const changed = await f.services.mailboxes.change({
      vnode: f.vnode,
      address: `a@${f.d1}`,
      generatePassword: true,
      name: "Ann",
      active: false,
      sieve: 'require "fileinto";\nkeep;\n',
    });
    const after = await stored(`a@${f.d1}`);
    expect(changed.value.password?.length).toBeGreaterThanOrEqual(16);
    expect(await verifyPassword(changed.value.password ?? "", after.passwordHash)).toBe(true);
    expect(after.passwordChangedAt.getTime()).toBeGreaterThan(before.passwordChangedAt.getTime());
    expect(changed.value.mailbox).toMatchObject({ name: "Ann", active: false, hasSieve: true });
    const change = changed.changes[0];
    if (change?.kind.case === "upsertMailbox")
      expect(change.kind.value).toMatchObject({
        active: false,
        sieveScript: 'require "fileinto";\nkeep;\n',
        passwordHash: after.passwordHash,
      });
    const kept = await f.services.mailboxes.change({ vnode: f.vnode, address: `a@${f.d1}`, sieve: null, quota: "2G" });
    expect(kept.value.password).toBeUndefined();
    expect((await stored(`a@${f.d1}`)).passwordHash).toBe(after.passwordHash);
    expect(kept.value.mailbox.hasSieve).toBe(false);
    await refusal(
      f.services.mailboxes.change({ vnode: f.vnode, address: `a@${f.d1}` }),
      "invalid_argument",
      /nothing to change/,
    );
    await refusal(
      f.services.mailboxes.change({ vnode: f.vnode, address: `zz@${f.d1}`, active: true }),
      "not_found",
      /no mailbox zz@/,
    );
  });

  it("on delete drops the address from shared aliases and removes or refuses aliases left empty", async () => {
    const f = await mailFixture(db);
    for (const u of ["a", "b"]) await f.services.mailboxes.add({ vnode: f.vnode, address: `${u}@${f.d1}` });
    await f.services.aliases.add({ vnode: f.vnode, source: `only@${f.d1}`, targets: `a@${f.d1}` });
    await f.services.aliases.add({ vnode: f.vnode, source: `chain@${f.d1}`, targets: `only@${f.d1}` });
    await f.services.aliases.add({
      vnode: f.vnode,
      source: `team@${f.d1}`,
      targets: [`a@${f.d1}`, `b@${f.d1}`, "x@remote.example"],
    });
    const before = await mailSnapshot(db, f.vnodeId);
    await refusal(
      f.services.mailboxes.remove({ vnode: f.vnode, address: `a@${f.d1}` }),
      "failed_precondition",
      new RegExp(`only target of only@${f.d1}, chain@${f.d1}.*--remove-aliases`),
    );
    expect(await mailSnapshot(db, f.vnodeId)).toBe(before);
    const removed = await f.services.mailboxes.remove({
      vnode: f.vnode,
      address: `a@${f.d1}`,
      removeAliases: true,
      keepMaildir: true,
    });
    expect(removed.value.removedAliases).toEqual([`only@${f.d1}`, `chain@${f.d1}`]);
    expect(removed.value.mailbox.aliases).toEqual([`only@${f.d1}`, `team@${f.d1}`]);
    expect(
      removed.changes.map(
        (c) =>
          `${c.kind.case}:${c.kind.case === "upsertAlias" ? c.kind.value.targets.join(",") : String(c.kind.value)}:${c.keepMaildir}`,
      ),
    ).toEqual([
      `upsertAlias:b@${f.d1},x@remote.example:false`,
      `deleteAlias:only@${f.d1}:false`,
      `deleteAlias:chain@${f.d1}:false`,
      `deleteMailbox:a@${f.d1}:true`,
    ]);
    expect((await f.services.aliases.get(f.vnode, `team@${f.d1}`)).targets).toEqual([`b@${f.d1}`, "x@remote.example"]);
    await refusal(f.services.mailboxes.get(f.vnode, `a@${f.d1}`), "not_found", /no mailbox/);
  });

  it("lists a domain's or the vnode's mailboxes with the aliases pointing at each", async () => {
    const f = await mailFixture(db);
    for (const e of [`b@${f.d1}`, `a@${f.d1}`, `c@${f.d2}`])
      await f.services.mailboxes.add({ vnode: f.vnode, address: e });
    await f.services.aliases.add({ vnode: f.vnode, source: `x@${f.d2}`, targets: [`a@${f.d1}`, `c@${f.d2}`] });
    const d1 = await f.services.mailboxes.list(f.vnode, `@${f.d1}`);
    expect(d1.map((m) => [m.ascii, m.aliases])).toEqual([
      [`a@${f.d1}`, [`x@${f.d2}`]],
      [`b@${f.d1}`, []],
    ]);
    expect((await f.services.mailboxes.list(f.vnode)).map((m) => m.ascii)).toEqual([
      `a@${f.d1}`,
      `b@${f.d1}`,
      `c@${f.d2}`,
    ]);
    expect((await f.services.mailboxes.get(f.vnode, `c@${f.d2}`)).aliases).toEqual([`x@${f.d2}`]);
  });
});
