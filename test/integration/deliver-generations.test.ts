// Generations that cannot go backwards, on both databases: every bump in SQL (concurrent settings
// changes lose none), `appliedGeneration` recorded only forwards, a compiler that only reads, the
// mail TLS certificate renewed once when due (a bump, so it reaches the vnode like any change),
// and the reconciler's digest check (a lost push noticed although the generations agree) and its
// refusal backoff, against a deliver service that records what it was asked.
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthReportSchema, MailHealthSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { HealthReport } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { silentLogger } from "../../common/log.ts";
import { createCertificateAuthority } from "../../common/pki/ca.ts";
import { lookupDigestOf } from "../../common/state/lookup-digest.ts";
import { compileDesiredState } from "../../controller/compiler/compile-state.ts";
import { MailTls, Vnode } from "../../controller/db/entities/index.ts";
import { recordAppliedGeneration } from "../../controller/db/generation.ts";
import type { Database } from "../../controller/db/open-database.ts";
import type { DeliverOutcome, DeliverRequest, DeliverService } from "../../controller/fleet/deliver.ts";
import { createReconciler } from "../../controller/fleet/reconciler.ts";
import { changeVnodeSettings, clearOperatorTls } from "../../controller/fleet/vnode-settings.ts";
import { MAIL_TLS_RENEW_BEFORE_MS, renewMailTlsIfDue } from "../../controller/pki/mail-tls.ts";
import type { MailTlsIssuer } from "../../controller/pki/mail-tls.ts";
import { databaseTargets, mailFixture } from "../helpers/mail-data-db.ts";

const HASH = "{SHA512-CRYPT}$6$abcdefgh$" + "x".repeat(86);

describe.each(databaseTargets)("generations on %s", (_name, open) => {
  let db: Database;
  let issuer: MailTlsIssuer;
  beforeAll(async () => {
    db = await open();
    const ca = await createCertificateAuthority({ commonName: "test mail CA", validDays: 3650, keyBits: 2048 });
    issuer = { signingCa: () => ({ caKeyPem: ca.keyPem, caCertPem: ca.certPem }) };
  });
  afterAll(async () => {
    await db?.close();
  });

  const row = (id: number) => db.em().fork().findOneOrFail(Vnode, { id });

  it("concurrent settings changes each bump the generation once (bumps in SQL, none lost)", async () => {
    const f = await mailFixture(db, { domains: false });
    const before = await f.generation();
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        changeVnodeSettings(db.em().fork(), { name: f.vnode, rspamd: i % 2 === 0, clamav: i % 3 === 0 }),
      ),
    );
    expect(await f.generation()).toBe(before + 8);
    // Each caller is told the generation its own change made, all different.
    expect(new Set(results.map((v) => v.generation)).size).toBe(8);
    const err = await clearOperatorTls(db.em().fork(), f.vnode).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "not_found" });
    expect(await f.generation()).toBe(before + 8);
  });

  it("appliedGeneration moves only forwards", async () => {
    const f = await mailFixture(db, { domains: false });
    expect(await recordAppliedGeneration(db.em().fork(), f.vnodeId, 5)).toBe(true);
    expect(await recordAppliedGeneration(db.em().fork(), f.vnodeId, 3)).toBe(false);
    expect(await recordAppliedGeneration(db.em().fork(), f.vnodeId, 5)).toBe(false);
    expect((await row(f.vnodeId)).appliedGeneration).toBe(5);
  });

  it("compiling only reads: no certificate issued, no row written, generation unchanged", async () => {
    const f = await mailFixture(db);
    const before = await f.generation();
    const state = await compileDesiredState(db.em().fork(), { id: f.vnodeId });
    expect(state.generation).toBe(BigInt(before));
    expect(state.tls?.certificateChainPem).toBe("");
    expect(await db.em().fork().count(MailTls, { vnodeId: f.vnodeId })).toBe(0);
    expect(await f.generation()).toBe(before);
  });

  it("mail TLS: issued once when missing or due (one bump each), not again while valid", async () => {
    const f = await mailFixture(db, { domains: false });
    const vnode = await row(f.vnodeId);
    const g0 = await f.generation();
    const first = await renewMailTlsIfDue(db.em().fork(), vnode, issuer);
    expect(first).toBe(g0 + 1);
    expect(await renewMailTlsIfDue(db.em().fork(), vnode, issuer)).toBeNull();
    expect(await f.generation()).toBe(g0 + 1);
    const compiled = await compileDesiredState(db.em().fork(), vnode);
    expect(compiled.generation).toBe(BigInt(g0 + 1));
    expect(compiled.tls?.certificateChainPem).toContain("BEGIN CERTIFICATE");
    // Within the renewal window: a new certificate and a new generation for the reconciler.
    const tls = await db.em().fork().findOneOrFail(MailTls, { vnodeId: f.vnodeId });
    await db
      .em()
      .fork()
      .nativeUpdate(MailTls, { id: tls.id }, { notAfter: new Date(Date.now() + MAIL_TLS_RENEW_BEFORE_MS - 60_000) });
    expect(await renewMailTlsIfDue(db.em().fork(), vnode, issuer)).toBe(g0 + 2);
    const renewed = await db.em().fork().findOneOrFail(MailTls, { vnodeId: f.vnodeId });
    expect(renewed.certificateChainPem).not.toBe(tls.certificateChainPem);
    expect(renewed.notAfter.getTime()).toBeGreaterThan(Date.now() + MAIL_TLS_RENEW_BEFORE_MS);
  });

  describe("reconciler", () => {
    const recorder = () => {
      const calls: DeliverRequest[] = [];
      const service: DeliverService & { calls: DeliverRequest[]; next?: (r: DeliverRequest) => DeliverOutcome } = {
        calls,
        async deliver(request) {
          calls.push(request);
          return service.next?.(request) ?? { pushed: true, diff: [] };
        },
      };
      return service;
    };
    const report = (generation: number, digest: string, drift = false): HealthReport =>
      create(HealthReportSchema, {
        appliedGeneration: BigInt(generation),
        stateDigest: digest,
        drift,
        mail: create(MailHealthSchema, {}),
      });

    it("sends the whole state when the agent's lookup digest differs at the same generation", async () => {
      const f = await mailFixture(db);
      await f.services.mailboxes.add({ vnode: f.vnode, address: `a@${f.d1}`, passwordHash: HASH, name: "Ann" });
      await f.services.aliases.add({ vnode: f.vnode, source: `info@${f.d1}`, targets: [`a@${f.d1}`] });
      const g = await f.generation();
      const right = lookupDigestOf(await compileDesiredState(db.em().fork(), { id: f.vnodeId }));
      const deliver = recorder();
      const r = createReconciler({ db, deliver, log: silentLogger, digestCheckMs: 0 });
      for (let i = 0; i < 3; i++) await r.onReport(f.vnodeId, report(g, right));
      expect(deliver.calls).toHaveLength(0);
      // A push lost on its way (or rows changed behind the agent's back) with the generations equal.
      const wrong = "f".repeat(64);
      await r.onReport(f.vnodeId, report(g, wrong));
      expect(deliver.calls).toHaveLength(0); // one report may race an apply
      await r.onReport(f.vnodeId, report(g, wrong));
      expect(deliver.calls).toEqual([{ vnode: f.vnode, actor: "reconciler", reconcile: true }]);
    });

    it("does not resend a generation the agent reports it is applying; a lag after it is resent", async () => {
      // Regression (issue 14): mail:import's closing 100,000-row state took 38 s to apply under
      // load; the agent's reports meanwhile (now answered while it applies) showed the old
      // generation, and after the 3 s grace the reconciler queued the same state again behind it.
      const f = await mailFixture(db);
      const g = await f.generation();
      const deliver = recorder();
      const r = createReconciler({ db, deliver, log: silentLogger, lagGraceMs: 0 });
      const applying = (generation: number): HealthReport =>
        create(HealthReportSchema, {
          appliedGeneration: BigInt(generation - 1),
          applyingGeneration: BigInt(generation),
          mail: create(MailHealthSchema, {}),
        });
      for (let i = 0; i < 10; i++) await r.onReport(f.vnodeId, applying(g));
      expect(deliver.calls).toHaveLength(0);
      // An older generation under way does not cover the newer one: the lag counts (grace 0 here).
      await r.onReport(f.vnodeId, applying(g - 1));
      await r.onReport(f.vnodeId, applying(g - 1));
      expect(deliver.calls).toEqual([{ vnode: f.vnode, actor: "reconciler", reconcile: true }]);
    });

    it("a refused state waits for its retry time instead of being resent on every report", async () => {
      const f = await mailFixture(db);
      const g = await f.generation();
      const deliver = recorder();
      deliver.next = () => ({ pushed: false, refused: "postfix check failed", diff: [] });
      const r = createReconciler({ db, deliver, log: silentLogger, lagGraceMs: 0 });
      // What the deliver service records on a refusal (see deliver.ts): the retry time is ahead.
      await db
        .em()
        .fork()
        .nativeUpdate(
          Vnode,
          { id: f.vnodeId },
          {
            refusedGeneration: g,
            refusedReason: "postfix check failed",
            refusedCount: 1,
            refusedAt: new Date(),
            retryAt: new Date(Date.now() + 3_600_000),
          },
        );
      for (let i = 0; i < 10; i++) await r.onReport(f.vnodeId, report(g - 1, "", true));
      expect(deliver.calls).toHaveLength(0);
      // Retry time reached: sent again (once, however many reports arrive meanwhile).
      await db
        .em()
        .fork()
        .nativeUpdate(Vnode, { id: f.vnodeId }, { retryAt: new Date(Date.now() - 1) });
      for (let i = 0; i < 5; i++) await r.onReport(f.vnodeId, report(g - 1, "", true));
      expect(deliver.calls).toHaveLength(1);
      // A newer generation (the operator fixed the input) goes at once, whatever was refused before.
      await changeVnodeSettings(db.em().fork(), { name: f.vnode, rspamd: false });
      await db
        .em()
        .fork()
        .nativeUpdate(Vnode, { id: f.vnodeId }, { retryAt: new Date(Date.now() + 3_600_000) });
      const r2 = createReconciler({ db, deliver, log: silentLogger, lagGraceMs: 0 });
      await r2.onReport(f.vnodeId, report(g - 1, "", true));
      expect(deliver.calls).toHaveLength(2);
    });
  });
});
