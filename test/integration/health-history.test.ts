// Health reports into the database on a fresh schema: mail_services rows per daemon plus the
// agent row, vnodes.fs_capacity_bytes, top-mailbox usage into mail_vboxes.usage, and a history
// that is sampled (not every report) and pruned by age.
import { describe, expect, it } from "vitest";
import { create } from "@bufbuild/protobuf";
import { openDatabase } from "../../controller/db/open-database.ts";
import {
  FilesystemUsageSchema,
  HealthReportSchema,
  MailHealthSchema,
  MailboxUsageSchema,
  PostfixQueueSchema,
  QuotaSummarySchema,
  ServiceHealthSchema,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { createHealthWriter } from "../../controller/health/save-health.ts";
import { recordHealthSample } from "../../controller/health/health-history.ts";
import { mailStatus } from "../../controller/health/mail-status.ts";
import { MailHealthSample, VMailService, Vnode } from "../../controller/db/entities/index.ts";
import { recordAppliedGeneration } from "../../controller/db/generation.ts";
import { freshPostgresUrl } from "../helpers/fresh-postgres.ts";

const pgUrl = process.env["DATABASE_URL_TEST"];

const freshPostgres = (url: string): Promise<string> => freshPostgresUrl(url, "health");

const report = (deferred: number) =>
  create(HealthReportSchema, {
    vnode: "a",
    timeUnixMs: BigInt(Date.now()),
    agentVersion: "t",
    appliedGeneration: 3n,
    services: [
      create(ServiceHealthSchema, { name: "postfix", state: "active", version: "3.7.11" }),
      create(ServiceHealthSchema, { name: "dovecot", state: "failed", detail: "not running" }),
    ],
    mail: create(MailHealthSchema, {
      collectedUnixMs: BigInt(Date.now()),
      queue: create(PostfixQueueSchema, { deferred, oldestDeferredSeconds: 120 }),
      dovecotUsers: -1,
      dovecotConnections: -1,
      filesystem: create(FilesystemUsageSchema, {
        path: "/srv",
        sizeBytes: 1000n,
        usedBytes: 900n,
        availableBytes: 100n,
      }),
      quota: create(QuotaSummarySchema, {
        mailboxes: 1,
        over80: 1,
        over90: 1,
        top: [create(MailboxUsageSchema, { address: "a@b.test", usedBytes: 95n, limitBytes: 100n })],
      }),
    }),
  });

describe("health into the database", () => {
  it("stores services, the agent row, fs capacity and a bounded history", async () => {
    const db = await openDatabase({ dataDir: "memory://" });
    try {
      const em = db.em();
      const v = em.create(Vnode, { name: "a", address: "192.0.2.1:7444", status: "enrolled", generation: 4 });
      await em.flush();
      const writer = createHealthWriter({ everyMs: 60_000, keepMs: 3600_000 });
      await writer.save(db.em(), v.id, report(2));
      await writer.save(db.em(), v.id, report(3));
      const rows = await db.em().find(VMailService, { vnodeId: v.id }, { orderBy: { service: "asc" } });
      expect(rows.map((r) => `${r.service}:${r.state}`)).toEqual(["agent:active", "dovecot:failed", "postfix:active"]);
      expect(rows.find((r) => r.service === "postfix")?.config).toMatchObject({ queue: { deferred: 3 } });
      expect((await db.em().findOne(Vnode, { id: v.id }))?.fsCapacityBytes).toBe(1000);
      // Two reports within a minute: one sample.
      expect(await db.em().count(MailHealthSample, { vnodeId: v.id })).toBe(1);
      // Old samples are pruned when a new one is taken.
      const seen = new Map<number, number>();
      await recordHealthSample(db.em(), v.id, report(4), seen, { everyMs: 1, keepMs: 1000 }, Date.now() + 10_000);
      expect(await db.em().count(MailHealthSample, { vnodeId: v.id })).toBe(1);
      const [view] = await mailStatus(db.em(), { vnode: "a", historySamples: 5 });
      expect(view?.generationLag).toBe(1);
      expect(view?.problems.join("\n")).toMatch(/generation lags: applied 3 of 4/);
      expect(view?.problems.join("\n")).toMatch(/dovecot failed/);
      expect(view?.problems.join("\n")).toMatch(/mail filesystem 90% full/);
      expect(view?.history).toHaveLength(1);
    } finally {
      await db.close();
    }
  });

  // Reports reordered (two links of one vnode while a new identity drains the old, a report
  // overtaken by the push's own answer): the newest applied generation seen stays.
  it.each([["pglite"], ...(pgUrl ? [["postgresql"]] : [])])(
    "never moves applied_generation backwards (%s)",
    async (kind) => {
      const db =
        kind === "postgresql" && pgUrl
          ? await openDatabase({ url: await freshPostgres(pgUrl), poolSize: 2 })
          : await openDatabase({ dataDir: "memory://" });
      try {
        const em = db.em();
        const v = em.create(Vnode, { name: "a", address: "192.0.2.1:7444", status: "enrolled", generation: 9 });
        await em.flush();
        const applied = async (): Promise<number> =>
          (await db.em().fork().findOne(Vnode, { id: v.id }))?.appliedGeneration ?? -1;
        const writer = createHealthWriter({ everyMs: 60_000, keepMs: 3600_000 });
        const at = (generation: number) => ({ ...report(0), appliedGeneration: BigInt(generation) });
        await writer.save(db.em(), v.id, at(5));
        expect(await applied()).toBe(5);
        // An older report arriving after the newer one: a changed report, still not backwards.
        await writer.save(db.em(), v.id, at(4));
        expect(await applied()).toBe(5);
        // A push's answer recorded 8, then a report taken before the push lands.
        await recordAppliedGeneration(db.em().fork(), v.id, 8);
        await writer.save(db.em(), v.id, at(6));
        expect(await applied()).toBe(8);
        // Forwards still moves it.
        await writer.save(db.em(), v.id, at(9));
        expect(await applied()).toBe(9);
      } finally {
        await db.close();
      }
    },
  );
});
