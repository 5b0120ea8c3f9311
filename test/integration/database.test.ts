// The same migrations and entity work on both databases: the embedded PGlite and a real
// PostgreSQL (the throwaway cluster scripts/test starts; DATABASE_URL_TEST).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../controller/db/open-database.ts";
import type { Database } from "../../controller/db/open-database.ts";
import { CommandLog, JoinToken, VMailService, Vnode } from "../../controller/db/entities/index.ts";
import { audited } from "../../controller/audit/audit.ts";
import { NetservaError } from "../../common/errors.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const pgUrl = process.env["DATABASE_URL_TEST"];
const opened: Database[] = [];

const freshPostgres = async (url: string): Promise<Database> =>
  openDatabase({ url: await freshPostgresUrl(url, "db") });

const targets: Array<[string, () => Promise<Database>]> = [["pglite", () => openDatabase({ dataDir: "memory://" })]];
if (pgUrl) targets.push(["postgresql", () => freshPostgres(pgUrl)]);

afterAll(async () => {
  await Promise.all(opened.map((db) => db.close()));
});

describe.each(targets)("database on %s", (kind, open) => {
  let db: Database;
  beforeAll(async () => {
    db = await open();
    opened.push(db);
    const em = db.em();
    em.create(Vnode, { name: "vn1", address: "127.0.0.1:7444" });
    await em.flush();
  });

  it("runs the migrations and maps every entity", async () => {
    expect(db.kind).toBe(kind);
    const em = db.em();
    const vnode = await em.findOneOrFail(Vnode, { name: "vn1" });
    em.create(JoinToken, {
      tokenId: "abc123",
      secretHash: "x".repeat(64),
      vnodeId: vnode.id,
      expiresAt: new Date(Date.now() + 60_000),
    });
    await em.upsert(
      VMailService,
      { vnodeId: vnode.id, service: "postfix", state: "active", version: "3.7.11", updatedAt: new Date() },
      { onConflictFields: ["vnodeId", "service"] },
    );
    await em.upsert(
      VMailService,
      { vnodeId: vnode.id, service: "postfix", state: "failed", version: "3.7.11", updatedAt: new Date() },
      { onConflictFields: ["vnodeId", "service"] },
    );
    await em.flush();
    const services = await db.em().find(VMailService, { vnodeId: vnode.id });
    expect(services.map((s) => s.state)).toEqual(["failed"]);
    expect(await db.em().count(JoinToken, { vnodeId: vnode.id })).toBe(1);
  });

  it("refuses a duplicate vnode name through the unique constraint", async () => {
    const em = db.em();
    em.create(Vnode, { name: "vn1", address: "127.0.0.1:1" });
    await expect(em.flush()).rejects.toThrow();
  });

  it("records commands in the log with result and duration, refusals too", async () => {
    await audited(db.em(), { actor: "tester", command: "vnode add", vnodeName: "vn1" }, async () => "done");
    await expect(
      audited(db.em(), { actor: "tester", command: "vnode add", vnodeName: "vn1" }, async () => {
        throw new NetservaError("already_exists", "vnode 'vn1' already exists");
      }),
    ).rejects.toThrow(/already exists/);
    const rows = await db.em().find(CommandLog, { actor: "tester" }, { orderBy: { id: "asc" } });
    expect(rows.map((r) => r.result)).toEqual(["ok", "refused"]);
    expect(rows[1]?.error).toMatch(/already exists/);
    expect(rows.every((r) => Number(r.durationMs) >= 0 && r.requestId.length > 0)).toBe(true);
  });
});

it("the suite ran against a real PostgreSQL when scripts/test provided one", () => {
  if (process.env["NETSERVA_TEST_RUNNER"]) expect(pgUrl).toBeTruthy();
});
