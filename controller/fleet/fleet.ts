// The fleet: a link to every enrolled vnode, health written to the database, revocations pushed
// to agents. The vnode list is re-read periodically so enrollments and revocations take effect
// without a restart.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  UpdateRevocationsRequestSchema,
  UpdateTrustRequestSchema,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import { setImmediate as yieldTurn } from "node:timers/promises";
import { Vnode } from "../db/entities/index.ts";
import { createFleetChangeReader, type FleetVnodeRow } from "./fleet-changes.ts";
import { createVnodeLink } from "./vnode-link.ts";
import { createConnectGate, type ConnectGate } from "./connect-gate.ts";
import type { VnodeLink } from "./vnode-link.ts";
import type { DeliverService } from "./deliver.ts";
import { createReconciler } from "./reconciler.ts";
import { createHealthWriter, type FlushCounts } from "../health/save-health.ts";
import type { HistoryPolicy } from "../health/health-history.ts";
import { syncMailboxUsage } from "./mailbox-usage-fetch.ts";

/** How the fleet's links authenticate: the CAs agents are checked against, our certificate
 *  (with its chain) and key, and the pin of the CA that issues certificates now. */
export interface FleetIdentity {
  caPem: string;
  certPem: string;
  keyPem: string;
  issuingCaPin: string;
}

export interface FleetOptions extends FleetIdentity {
  db: Database;
  log: Logger;
  healthIntervalMs?: number;
  /** With it the fleet reconciles: a vnode that lags its generation or drifts gets the whole state. */
  deliver?: DeliverService;
  /** Reconciler tuning (tests). */
  lagGraceMs?: number;
  digestCheckMs?: number;
  staleAfterMs?: number;
  refreshMs?: number;
  /** Mail health history sampling (default one sample a minute, kept a day). */
  historyPolicy?: HistoryPolicy;
  /** How often each vnode's full mailbox usage list is fetched (default 5 min; 0 = never). */
  usageSyncMs?: number;
  /** How often noted health goes to the database (default 1 s; see health/save-health.ts). */
  healthFlushMs?: number;
  /** Links connecting at once, fleet-wide (default 32; see connect-gate.ts). */
  connectsAtOnce?: number;
  /** Counts each report and each flush's writes (the daemon's metrics). */
  onHealth?: (event: { reports: number } | FlushCounts) => void;
  /** Several controllers: links (health, reconciler, pushes) only to the vnodes whose lease we
   *  hold. Absent: every enrolled vnode. */
  holds?: (vnode: string) => boolean;
  /** Counts each refresh's rows read and each revocation fan-out's pushes and turns (the
   *  daemon's metrics): what the event loop was given to do, whatever the fleet's size. */
  onFleetWork?: (work: FleetWork) => void;
  /** Links made per turn of the event loop (default LINKS_PER_TURN). */
  linksPerTurn?: number;
  /** Revocation pushes per turn of the event loop (default REVOCATION_PUSHES_PER_TURN). */
  revocationPushesPerTurn?: number;
}

/** Work done by a refresh (rows read) or a revocation fan-out (pushes, and the turns of the event
 *  loop they were spread over). */
export interface FleetWork {
  refreshes?: number;
  vnodeRows?: number;
  certificateRows?: number;
  revocationPushes?: number;
  revocationTurns?: number;
}

/** Each link made costs a TLS context and a grpc-js channel (~1 ms on a loaded machine). */
export const LINKS_PER_TURN = 16;
/** Whole mailbox usage lists fetched and stored at once (see maybeSyncUsage). */
export const USAGE_SYNCS_AT_ONCE = 2;
/** Each push serialises and writes a message on its link's connection. */
export const REVOCATION_PUSHES_PER_TURN = 16;

export interface Fleet {
  link(vnode: string): VnodeLink | undefined;
  /** The links' connect slots: how many are in flight now, and the most at once so far; other
   *  first contacts (a new lease's announcement) take a slot too. */
  readonly connects: Pick<ConnectGate, "inFlight" | "peak" | "acquire">;
  /** New links with a new identity or trust (CA rotation, renewed certificate); the old ones
   *  close after a grace period so calls in flight finish. */
  setIdentity(identity: FleetIdentity): Promise<void>;
  refresh(): Promise<void>;
  close(): Promise<void>;
}

export function startFleet(options: FleetOptions): Fleet {
  const links = new Map<string, { link: VnodeLink; address: string }>();
  let revoked = new Set<string>();
  /** The list pushed to agents: made once per change, not once per link. */
  let revokedList: string[] = [];
  let revokedKey = "";
  let closed = false;
  let identity: FleetIdentity = options;
  const draining = new Set<VnodeLink>();
  /** Database work the fleet started in the background (refreshes, health flushes, link
   *  bookkeeping): close() waits for it, so the caller's database close never races a query
   *  (a pool destroyed under a running query left a socket that held serve past its deadline). */
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    const done = (): void => void inFlight.delete(work);
    work.then(done, done);
    return work;
  };

  const health = createHealthWriter(options.historyPolicy);
  const gate = createConnectGate(options.connectsAtOnce);
  const usageSyncedAt = new Map<number, number>();
  /** Each enrolled vnode's generation as of the last refresh: the reconciler's O(1) check. */
  const generations = new Map<number, number>();
  const flushHealth = (): void =>
    void track(health.flush(options.db.em())).then(
      (counts) => options.onHealth?.(counts),
      (error: unknown) => options.log.warn("saving health failed", { error: String(error) }),
    );
  /** The whole mailbox usage list now and then (the report carries only the top mailboxes). */
  /** Usage syncs at once, fleet-wide: a restart meets every vnode's first report together. */
  const usageSlots = createConnectGate(USAGE_SYNCS_AT_ONCE);
  const maybeSyncUsage = async (vnodeId: number, link: VnodeLink): Promise<void> => {
    const every = options.usageSyncMs ?? 300_000;
    const last = usageSyncedAt.get(vnodeId);
    if (every <= 0 || (last !== undefined && Date.now() - last < every)) return;
    usageSyncedAt.set(vnodeId, Date.now());
    const release = await usageSlots.acquire();
    try {
      if (!closed) await syncMailboxUsage(options.db.em(), link.client, vnodeId);
    } finally {
      release();
    }
  };

  const reconciler = options.deliver
    ? createReconciler({
        db: options.db,
        deliver: options.deliver,
        log: options.log,
        ...(options.lagGraceMs !== undefined ? { lagGraceMs: options.lagGraceMs } : {}),
        ...(options.digestCheckMs !== undefined ? { digestCheckMs: options.digestCheckMs } : {}),
      })
    : undefined;

  /** The revocation list (by its key) each link's agent took, and links with a push under way.
   *  Pushed when the link is made, to every link when the list changes, and again on each
   *  health report until the agent takes the current one: a push to an agent that was not
   *  listening yet (restarting, cut off) would otherwise be lost until the next revoke. */
  const revocationsConfirmed = new WeakMap<VnodeLink, string>();
  const revocationsPushing = new WeakSet<VnodeLink>();
  const pushRevocations = (link: VnodeLink): void => {
    if (revocationsConfirmed.get(link) === revokedKey || revocationsPushing.has(link)) return;
    revocationsPushing.add(link);
    const pushedKey = revokedKey;
    const request = create(UpdateRevocationsRequestSchema, {
      meta: create(CommandMetaSchema, { requestId: randomUUID(), actor: "controller" }),
      revokedSerials: revokedList,
    });
    link.client
      .call("updateRevocations", request)
      .then(() => revocationsConfirmed.set(link, pushedKey))
      .catch((error: unknown) => options.log.warn("revocation push failed", { error: String(error) }))
      .finally(() => revocationsPushing.delete(link));
  };

  /** Links whose agent confirmed the trust bundle, and links with a push under way. */
  const trustConfirmed = new WeakSet<VnodeLink>();
  const trustPushing = new WeakSet<VnodeLink>();
  /** The CAs this agent is to trust; it answers with the pins it trusts, kept for `ca status`.
   *  Sent once per link, on its first health report (the agent is surely listening then), and
   *  again on the next report until the agent confirms. */
  const pushTrust = (link: VnodeLink, vnodeId: number, pushed: FleetIdentity): void => {
    if (trustConfirmed.has(link) || trustPushing.has(link)) return;
    trustPushing.add(link);
    const request = create(UpdateTrustRequestSchema, {
      meta: create(CommandMetaSchema, { requestId: randomUUID(), actor: "controller" }),
      caBundlePem: pushed.caPem,
      issuingCaPin: pushed.issuingCaPin,
    });
    link.client
      .call("updateTrust", request)
      .then(async (response) => {
        await track(
          options.db
            .em()
            .nativeUpdate(
              Vnode,
              { id: vnodeId },
              { trustedCaPins: response.trustedCaPins, trustUpdatedAt: new Date() },
            ),
        );
        trustConfirmed.add(link);
      })
      .catch((error: unknown) => options.log.warn("trust push failed", { error: String(error) }))
      .finally(() => trustPushing.delete(link));
  };

  /** Every enrolled vnode as of the last refresh, by id (kept up to date from the changed rows). */
  const enrolled = new Map<number, FleetVnodeRow>();
  /** Revoked certificates not expired yet, by serial (kept up to date from the changed rows). */
  const revokedCertificates = new Map<string, { vnodeId: number | null; notAfter: Date }>();
  const changes = createFleetChangeReader(options.db);

  /** What one turn of the event loop is given: links made, revocation pushes sent. */
  const linksPerTurn = options.linksPerTurn ?? LINKS_PER_TURN;
  const pushesPerTurn = options.revocationPushesPerTurn ?? REVOCATION_PUSHES_PER_TURN;

  /** The new revocation list to every link, a slice per turn of the event loop: a push is a
   *  message serialised and written per link, and a thousand in one task held the loop for a
   *  second (every push and report arriving meanwhile waited behind it). */
  const fanOutRevocations = async (): Promise<void> => {
    const targets = [...links.values()].map((entry) => entry.link);
    let turns = 0;
    for (let i = 0; i < targets.length; i += pushesPerTurn) {
      if (i > 0) {
        await yieldTurn();
        turns += 1;
      }
      if (closed) return;
      for (const link of targets.slice(i, i + pushesPerTurn)) pushRevocations(link);
    }
    options.onFleetWork?.({ revocationPushes: targets.length, revocationTurns: turns + (targets.length > 0 ? 1 : 0) });
  };

  /** Refreshes run one after another (each applies the rows changed since the one before); a call
   *  while one runs gets the next one, shared by every caller meanwhile. */
  let tail: Promise<void> = Promise.resolve();
  let queued: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    if (closed) return Promise.resolve();
    if (queued) return queued;
    const run: Promise<void> = tail
      .catch(() => undefined)
      .then(() => {
        if (queued === run) queued = undefined;
        return refreshNow();
      });
    queued = run;
    tail = run;
    return track(run);
  };
  const refreshNow = async (): Promise<void> => {
    if (closed) return;
    // Only the rows changed since the last refresh (fleet-changes.ts): with nothing changed, none.
    const changed = await changes.read();
    options.onFleetWork?.({
      refreshes: 1,
      vnodeRows: changed.vnodes.length,
      certificateRows: changed.certificates.length,
    });
    for (const v of changed.vnodes) {
      if (v.status === "enrolled") enrolled.set(v.id, v);
      else enrolled.delete(v.id);
    }
    for (const c of changed.certificates) {
      if (c.revoked) revokedCertificates.set(c.serial, { vnodeId: c.vnodeId, notAfter: c.notAfter });
      else revokedCertificates.delete(c.serial);
    }
    const before = revoked;
    const now = Date.now();
    // An expired certificate leaves the list (as it did when the list was read whole).
    revoked = new Set([...revokedCertificates].filter(([, c]) => c.notAfter.getTime() > now).map(([serial]) => serial));
    const sorted = [...revoked].sort();
    const key = sorted.join(",");
    const revocationsChanged = key !== revokedKey;
    revokedKey = key;
    if (revocationsChanged) revokedList = sorted;
    // Only the links of vnodes with a newly revoked certificate are dropped (a new connection
    // re-checks the certificate); the rest of the fleet keeps its connections and is told the
    // new list below. Dropping every link on each revocation was a reconnect storm.
    const cutOff = new Set<number>();
    for (const serial of revoked) {
      const vnodeId = revokedCertificates.get(serial)?.vnodeId;
      if (!before.has(serial) && vnodeId !== null && vnodeId !== undefined) cutOff.add(vnodeId);
    }
    // Closed while the reads above were under way: a link made now would outlive close() and
    // keep serve from exiting (its reconnect timers never stop).
    if (closed) return;
    for (const v of changed.vnodes) {
      if (v.status === "enrolled") generations.set(v.id, v.generation);
      else generations.delete(v.id);
    }
    // In memory, O(fleet) map lookups: which vnodes we link to (leases may have moved without a
    // row changing).
    const wanted = new Map<string, FleetVnodeRow>();
    for (const v of enrolled.values()) if (!options.holds || options.holds(v.name)) wanted.set(v.name, v);
    for (const [name, entry] of links) {
      const vnode = wanted.get(name);
      if (!vnode || vnode.address !== entry.address || cutOff.has(vnode.id)) {
        // Revoked or moved: drop the connection at once (a new one re-checks the certificate).
        const reason = !vnode
          ? "not ours any more (revoked, removed or leased elsewhere)"
          : vnode.address !== entry.address
            ? "moved"
            : "certificate revoked";
        options.log.info("link dropped", { vnode: name, reason });
        entry.link.close();
        links.delete(name);
      }
    }
    const missing = [...wanted.values()].filter((v) => !links.has(v.name));
    for (let i = 0; i < missing.length; i += linksPerTurn) {
      if (i > 0) await yieldTurn();
      if (closed) return;
      for (const vnode of missing.slice(i, i + linksPerTurn)) {
        // Made by a refresh running meanwhile (setIdentity's), or no longer wanted.
        if (links.has(vnode.name) || enrolled.get(vnode.id)?.address !== vnode.address) continue;
        if (options.holds && !options.holds(vnode.name)) continue;
        makeLink(vnode);
      }
    }
    if (revocationsChanged) await fanOutRevocations();
  };

  const makeLink = (vnode: FleetVnodeRow): void => {
    const log = options.log.child({ vnode: vnode.name });
    // The identity this link was made with: a link made before a CA step pushes what it knows.
    const linkIdentity = identity;
    const link = createVnodeLink({
      vnode: vnode.name,
      address: vnode.address,
      caPem: identity.caPem,
      certPem: identity.certPem,
      keyPem: identity.keyPem,
      isRevoked: (serial) => revoked.has(serial),
      gate,
      intervalMs: options.healthIntervalMs ?? 5000,
      staleAfterMs: options.staleAfterMs ?? 12_000,
      log,
      onReport: (report) => {
        pushRevocations(link);
        pushTrust(link, vnode.id, linkIdentity);
        // Noted in memory; the database gets it at the next flush (bounded, whatever the fleet).
        health.note(vnode.id, report);
        options.onHealth?.({ reports: 1 });
        track(
          Promise.resolve(reconciler?.onReport(vnode.id, report, generations.get(vnode.id))).then(() =>
            report.mail && !closed ? maybeSyncUsage(vnode.id, link) : undefined,
          ),
        ).catch((error: unknown) => log.warn("reconcile after health failed", { error: String(error) }));
      },
      onDown: () => {
        // A link replaced by a newer one (new identity) says nothing about the vnode.
        if (links.get(vnode.name)?.link !== link) return;
        // Down is recorded at once, so `status` does not wait for the 15 s window.
        health.forget(vnode.id);
        track(options.db.em().nativeUpdate(Vnode, { id: vnode.id }, { lastSeenAt: null })).catch(() => undefined);
      },
    });
    links.set(vnode.name, { link, address: vnode.address });
    pushRevocations(link);
  };

  const flushTimer = setInterval(flushHealth, options.healthFlushMs ?? 1000);
  const timer = setInterval(
    () => void refresh().catch((error: unknown) => options.log.warn("fleet refresh failed", { error: String(error) })),
    options.refreshMs ?? 2000,
  );
  void refresh().catch((error: unknown) => options.log.warn("fleet refresh failed", { error: String(error) }));
  return {
    link: (name) => links.get(name)?.link,
    connects: gate,
    refresh,
    async setIdentity(next) {
      identity = next;
      const old = [...links.values()].map((entry) => entry.link);
      links.clear();
      for (const link of old) draining.add(link);
      setTimeout(() => {
        for (const link of old) {
          // Its replacement reports already: closing it is no sign the vnode went down.
          link.close({ quiet: true });
          draining.delete(link);
        }
      }, 15_000).unref();
      await refresh();
    },
    async close() {
      closed = true;
      reconciler?.close();
      clearInterval(timer);
      clearInterval(flushTimer);
      for (const link of draining) link.close();
      draining.clear();
      for (const entry of links.values()) entry.link.close();
      links.clear();
      // Links closing record their vnode down (tracked above); each task is settled, whatever
      // its outcome (its own catch logs it).
      while (inFlight.size) await Promise.allSettled([...inFlight]);
    },
  };
}
