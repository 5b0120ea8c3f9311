// The reconciler: a vnode whose health report shows it behind its generation, drifting (a hand
// edit), or at its generation with lookup rows other than the ones compiled for it (a lost push)
// gets the whole state through the deliver service, unless its agent reports it unmanaged. A state the agent refused waits for the
// retry time the deliver service recorded (capped backoff) instead of being resent every report.
import type { HealthReport } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { Logger } from "../../common/log.ts";
import { lookupDigestOf } from "../../common/state/lookup-digest.ts";
import { audited } from "../audit/audit.ts";
import { compileDesiredState } from "../compiler/compile-state.ts";
import { Vnode } from "../db/entities/index.ts";
import type { Database } from "../db/open-database.ts";
import type { DeliverService } from "./deliver.ts";
import { createConnectGate } from "./connect-gate.ts";

/** How long a vnode may lag its generation before the reconciler sends the whole state. */
export const LAG_GRACE_MS = 3000;
/** At most one digest check (a read of every lookup row) per vnode in this period. */
export const DIGEST_CHECK_MS = 30_000;
/** Vnodes reconciled at once, fleet-wide. A restarted controller knows no digest yet, so each
 *  vnode's first report reads its vnode row and compiles its state: a thousand at once took every
 *  pooled connection and the health flush's liveness waited behind them (status showed the fleet
 *  down while it reported). A vnode waiting its turn skips its reports meanwhile (busy). */
export const RECONCILES_AT_ONCE = 4;

export interface ReconcilerOptions {
  db: Database;
  deliver: DeliverService;
  log: Logger;
  lagGraceMs?: number;
  digestCheckMs?: number;
  /** Default RECONCILES_AT_ONCE. */
  reconcilesAtOnce?: number;
}

export interface Reconciler {
  /** Called with every health report; never throws (failures are logged). `generation` is the
   *  vnode's generation as the fleet last read it: a report at that generation with the digest
   *  expected for it needs nothing, and is settled in memory without a database read. */
  onReport(vnodeId: number, report: HealthReport, generation?: number): Promise<void>;
  /** Reports still waiting for a slot are dropped (the fleet is closing). */
  close(): void;
}

type Why = "drift" | "lag" | "digest";

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const graceMs = options.lagGraceMs ?? LAG_GRACE_MS;
  const digestEveryMs = options.digestCheckMs ?? DIGEST_CHECK_MS;
  const busy = new Set<number>();
  const slots = createConnectGate(options.reconcilesAtOnce ?? RECONCILES_AT_ONCE);
  let closed = false;
  const lastAttempt = new Map<number, number>();
  const lagSince = new Map<number, { generation: number; since: number }>();
  /** Digest of the lookup rows compiled for a generation, per vnode. */
  const expected = new Map<number, { generation: number; digest: string }>();
  const digestCheckedAt = new Map<number, number>();
  /** Consecutive reports at the generation with another digest (one can race an apply). */
  const mismatches = new Map<number, number>();

  const expectedDigest = async (vnode: Vnode): Promise<string | undefined> => {
    const known = expected.get(vnode.id);
    if (known?.generation === vnode.generation) return known.digest;
    const last = digestCheckedAt.get(vnode.id);
    if (last !== undefined && Date.now() - last < digestEveryMs) return undefined;
    digestCheckedAt.set(vnode.id, Date.now());
    const state = await compileDesiredState(options.db.em().fork(), vnode);
    const digest = lookupDigestOf(state);
    expected.set(vnode.id, { generation: Number(state.generation), digest });
    return Number(state.generation) === vnode.generation ? digest : undefined;
  };

  const why = async (vnode: Vnode, report: HealthReport): Promise<Why | undefined> => {
    if (report.drift) return "drift";
    const applied = Number(report.appliedGeneration);
    if (applied < vnode.generation) {
      // The agent is applying this generation as it reports (a 100,000-row state takes tens of
      // seconds under load): sending it again would queue a second, identical apply behind it.
      // The grace starts afresh from the first report after it.
      if (Number(report.applyingGeneration) >= vnode.generation) {
        lagSince.delete(vnode.id);
        return undefined;
      }
      // A report can overtake a push still on its way (the CLI commits, then sends): only a
      // lag that outlives a grace period means the vnode missed something.
      const seen = lagSince.get(vnode.id);
      if (!seen || seen.generation !== vnode.generation) {
        lagSince.set(vnode.id, { generation: vnode.generation, since: Date.now() });
        return undefined;
      }
      return Date.now() - seen.since >= graceMs ? "lag" : undefined;
    }
    lagSince.delete(vnode.id);
    // An agent without a mail host reports no digest: nothing to compare.
    if (applied !== vnode.generation || report.stateDigest === "" || !report.mail) return undefined;
    const digest = await expectedDigest(vnode);
    if (digest === undefined || digest === report.stateDigest) {
      mismatches.delete(vnode.id);
      return undefined;
    }
    const count = (mismatches.get(vnode.id) ?? 0) + 1;
    mismatches.set(vnode.id, count);
    return count >= 2 ? "digest" : undefined;
  };

  const reconcile = async (vnodeId: number, report: HealthReport): Promise<void> => {
    // Hands off: an unmanaged vnode (mail configuration we did not write) gets nothing pushed,
    // least of all the (often empty) state the controller holds for it.
    if (report.management === "unmanaged") return;
    const vnode = await options.db.em().fork().findOne(Vnode, { id: vnodeId });
    if (!vnode || vnode.status !== "enrolled") return;
    const reason = await why(vnode, report);
    if (!reason) return;
    // A refused state is not sent again before its retry time, whatever the reports say.
    if (vnode.retryAt && vnode.retryAt.getTime() > Date.now() && vnode.refusedGeneration === vnode.generation) return;
    const last = lastAttempt.get(vnodeId);
    if (last !== undefined && Date.now() - last < 2000) return;
    lastAttempt.set(vnodeId, Date.now());
    const log = options.log.child({ vnode: vnode.name });
    log.info("reconciling", { applied: report.appliedGeneration.toString(), generation: vnode.generation, reason });
    const outcome = await audited(
      options.db.em().fork(),
      {
        actor: "reconciler",
        command: "reconcile",
        vnodeName: vnode.name,
        generation: vnode.generation,
        args: { reason },
      },
      async () => options.deliver.deliver({ vnode: vnode.name, actor: "reconciler", reconcile: true }),
    );
    mismatches.delete(vnodeId);
    if (outcome.state)
      expected.set(vnodeId, { generation: Number(outcome.state.generation), digest: lookupDigestOf(outcome.state) });
    if (outcome.refused) log.warn("state refused", { generation: outcome.generation, error: outcome.refused });
    else if (!outcome.pushed) log.warn("reconcile failed", { error: outcome.reason });
  };

  /** The steady state, O(1): current, no drift, and the digest compiled for this generation. */
  const settled = (vnodeId: number, report: HealthReport, generation: number | undefined): boolean => {
    if (generation === undefined || report.drift || Number(report.appliedGeneration) !== generation) return false;
    if (report.stateDigest !== "" && report.mail) {
      const known = expected.get(vnodeId);
      if (known?.generation !== generation || known.digest !== report.stateDigest) return false;
    }
    lagSince.delete(vnodeId);
    mismatches.delete(vnodeId);
    return true;
  };

  return {
    async onReport(vnodeId, report, generation) {
      if (busy.has(vnodeId) || settled(vnodeId, report, generation)) return;
      busy.add(vnodeId);
      const release = await slots.acquire();
      try {
        if (!closed) await reconcile(vnodeId, report);
      } catch (error) {
        options.log.warn("reconcile failed", { vnode_id: vnodeId, error: String(error) });
      } finally {
        release();
        busy.delete(vnodeId);
      }
    },
    close() {
      closed = true;
    },
  };
}
