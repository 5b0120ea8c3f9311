// Per-domain variables: names, MQUOTA as the domain's default quota, secrets stored as hashes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../controller/db/open-database.ts";
import { VConf } from "../../controller/db/entities/index.ts";
import { verifyPassword } from "../../common/password/index.ts";
import { databaseTargets, mailFixture, refusal } from "../helpers/mail-data-db.ts";

describe.each(databaseTargets)("vconfs on %s", (_kind, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
  });
  afterAll(async () => {
    await db.close();
  });

  it("MQUOTA is the domain's default quota, in both directions", async () => {
    const f = await mailFixture(db);
    expect((await f.services.vconfs.list(f.vnode, f.d1)).find((v) => v.name === "MQUOTA")?.value).toBe("1G");
    const set = await f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name: "mquota", value: "2.5g" });
    expect(set.value).toEqual({ domain: f.d1, name: "MQUOTA", value: "2.5G", secret: false });
    expect((await f.services.domains.get(f.vnode, f.d1)).defaultQuota).toBe(2.5 * 1024 ** 3);
    await f.services.domains.change({ vnode: f.vnode, domain: f.d1, defaultQuota: "3G" });
    expect((await f.services.vconfs.list(f.vnode, f.d1)).find((v) => v.name === "MQUOTA")?.value).toBe("3G");
    await f.services.domains.change({ vnode: f.vnode, domain: f.d1, maxQuota: "4G" });
    await refusal(
      f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name: "MQUOTA", value: "5G" }),
      "invalid_argument",
      /over the limit of 4G/,
    );
    await refusal(
      f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name: "MQUOTA", value: "lots" }),
      "invalid_argument",
      /^value: quota 'lots'/,
    );
    const removed = await f.services.vconfs.remove({ vnode: f.vnode, domain: f.d1, name: "MQUOTA" });
    expect(removed.value.value).toBe("1G");
    expect(await db.em().count(VConf, { name: "MQUOTA" })).toBe(0);
  });

  it("stores MPWD, DPASS and *PASS/*PWD only as hashes and lists them as (hash)", async () => {
    const f = await mailFixture(db);
    for (const name of ["MPWD", "DPASS", "SQLPASS", "ADMIN_PWD"]) {
      const set = await f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name, value: `clear-${name}-value` });
      expect(set.value).toEqual({ domain: f.d1, name, value: "(hash)", secret: true });
    }
    await f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name: "VHOST", value: "web1" });
    const rows = await db.em().find(VConf, { value: { $like: "%clear-%" } });
    expect(rows).toEqual([]);
    const mpwd = await db.em().findOneOrFail(VConf, { name: "MPWD" });
    expect(mpwd.value).toMatch(/^\{SHA512-CRYPT\}\$6\$/);
    expect(await verifyPassword("clear-MPWD-value", mpwd.value)).toBe(true);
    const listed = await f.services.vconfs.list(f.vnode, f.d1);
    expect(listed.map((v) => `${v.name}=${v.value}`)).toEqual([
      "ADMIN_PWD=(hash)",
      "DPASS=(hash)",
      "MPWD=(hash)",
      "MQUOTA=1G",
      "SQLPASS=(hash)",
      "VHOST=web1",
    ]);
    expect(JSON.stringify((await f.logRows()).map((r) => r.args))).not.toContain("clear-");
    await f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name: "VHOST", value: "web2" });
    expect((await f.services.vconfs.list(f.vnode, f.d1)).find((v) => v.name === "VHOST")?.value).toBe("web2");
    await f.services.vconfs.remove({ vnode: f.vnode, domain: f.d1, name: "VHOST" });
    await refusal(
      f.services.vconfs.remove({ vnode: f.vnode, domain: f.d1, name: "VHOST" }),
      "not_found",
      /no variable VHOST/,
    );
  });

  it("never records the value of a refused name that looks like a secret", async () => {
    const f = await mailFixture(db);
    for (const name of ["MPWD\n", "DPASS ", "db-pass", "MPWD\u0000", "X.SECRET", "sql_password!"]) {
      await refusal(
        f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name, value: "leaked-secret-value" }),
        "invalid_argument",
        /^name: /,
      );
    }
    const logged = JSON.stringify((await f.logRows()).map((r) => [r.args, r.error]));
    expect(logged).toContain("not recorded");
    expect(logged).not.toContain("leaked-secret-value");
  });

  it.each([
    ["name", "M", "x", /2 to 16/],
    ["name", "1ABC", "x", /starting with a letter/],
    ["name", "A$B", "x", /A-Z/],
    ["value", "VHOST", "a\nb", /control character/],
    ["value", "VHOST", "", /empty/],
    ["value", "MPWD", "short", /at least 8/],
  ])("refuses bad %s (%j = %j)", async (field, name, value, message) => {
    const f = await mailFixture(db);
    const error = await refusal(
      f.services.vconfs.set({ vnode: f.vnode, domain: f.d1, name, value }),
      "invalid_argument",
      message,
    );
    expect(error.field).toBe(field);
  });
});
