// The one way anything reaches a vnode's agent: incremental lookup changes after a mail mutation,
// or the whole compiled state (settings, TLS, DKIM switches, DNS-driven changes, the reconciler).
// Every path gets the same rules here: only enrolled vnodes, the agent's certificate checked
// against the revocation list, the mail TLS certificate issued or renewed before a whole state is
// compiled, and `appliedGeneration` recorded only forwards. An unreachable or refusing vnode is
// an outcome, not an exception: the database holds the truth and the reconciler catches up.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { NetservaError } from "../../common/errors.ts";
import {
  ApplyChangesRequestSchema,
  ApplyStateRequestSchema,
  PingRequestSchema,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { ApplyResponse } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import type { DesiredState, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { compileDesiredState } from "../compiler/compile-state.ts";
import { Vnode } from "../db/entities/index.ts";
import { recordDelivery } from "../db/generation.ts";
import type { Database } from "../db/open-database.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { readControllerConfig } from "../home/controller-config.ts";
import { revokedSerials } from "../pki/certificate-records.ts";
import { mailTlsIssuerFor, renewMailTlsIfDue } from "../pki/mail-tls.ts";
import type { MailTlsIssuer } from "../pki/mail-tls.ts";
import type { AgentClient } from "./agent-client.ts";
import { agentClientFor } from "./agent-for-vnode.ts";
import { killPoint, killPointSoon } from "../faults/kill-points.ts";
import { notifyHolder } from "../db/change-feed.ts";
import { awaitHolderPush, leaseHolder } from "./holder-wait.ts";
import { timed } from "../../common/phase-timing.ts";
import { LEASE_TTL_MS } from "./lease-keeper.ts";

/** Above this many changes (a bulk import) the whole state is cheaper to send. */
const MAX_INCREMENTAL_CHANGES = 5000;

/** A vnode without a live link gets this long to answer a ping before a delivery gives up: a
 *  link cut without a reset (packets dropped) would otherwise hold the operator's command for
 *  the whole call deadline. The change is stored either way; the reconciler delivers it later. */
export const REACH_TIMEOUT_MS = 5000;

/** What a delivery needs of the vnode's row. A mutation that has just read it (with its lock)
 *  hands it over, so the push needs no read of its own. */
export interface KnownVnode {
  id: number;
  name: string;
  address: string;
  status: string;
  generation: number;
  management: string | null | undefined;
  managementReason: string | null | undefined;
  mailHostname: string | null | undefined;
}

export interface DeliverRequest {
  vnode: string;
  /** The vnode's row as read in the change's own transaction; absent = read here. */
  known?: KnownVnode;
  /** Who asked (operator, "reconciler"), for the agent's log. */
  actor: string;
  /** Lookup changes from generation-1 to generation; absent = the whole compiled state. */
  changes?: { generation: number; list: StateChange[] };
  dryRun?: boolean;
  /** Sent by the reconciler (a vnode that lagged, drifted or lost a push), not by a mutation:
   *  the fault tests' kill point for it is its own. */
  reconcile?: boolean;
}

export interface DeliverOutcome {
  pushed: boolean;
  /** Generation the agent reports after the push. */
  appliedGeneration?: number;
  /** Generation the push was meant to bring the vnode to. */
  generation?: number;
  /** Digest of the lookup rows the agent reports after the push. */
  stateDigest?: string;
  /** Set when the agent refused the state (its checker's words); the vnode keeps its old state. */
  refused?: string;
  /** The agent has seen a newer lease epoch than the one we sent: we no longer hold the vnode. */
  fenced?: boolean;
  /** Why it was not pushed, for the operator. */
  reason?: string;
  /** The agent's diff lines (dry run or applied). */
  diff: string[];
  /** The whole state that was sent (absent for incremental changes). */
  state?: DesiredState;
}

export interface DeliverServiceOptions {
  db: Database;
  /** The controller's home: its CA, certificate and key (read per delivery, so a renewal applies). */
  paths: HomePaths;
  mailTls: MailTlsIssuer;
  /** The fleet's link to a vnode (serve); without one a short-lived client is opened. */
  linkFor?: (vnode: string) => { client: AgentClient; connected: boolean } | undefined;
  /** Deadline of a short-lived client's calls (a whole 100,000-mailbox state may be queued ahead). */
  timeoutMs?: number;
  /** Wait before a refused state is sent again: doubles per refusal from firstMs up to maxMs. */
  refusalBackoff?: { firstMs: number; maxMs: number };
  /** Several controllers (serve on PostgreSQL): our lease epoch on a vnode, stamped on every
   *  command; undefined = we do not hold its lease, so we do not push. Absent: epoch 0, unfenced. */
  epochFor?: (vnode: string) => bigint | undefined;
}

export const DEFAULT_REFUSAL_BACKOFF = { firstMs: 2000, maxMs: 10 * 60_000 };

export interface DeliverService {
  deliver(request: DeliverRequest): Promise<DeliverOutcome>;
  /**
   * A delivery to `vnode` is coming (a command about to change it): open the connection to its
   * agent now (client, TLS handshake, reachability ping), so the handshake overlaps the
   * command's own work (hashing, the transaction) instead of following it. The next
   * deliver() to that vnode uses it; close() drops one left unused. Never throws.
   */
  warm?(vnode: string): void;
  /** Closes connections opened by warm() and not used. */
  close?(): void;
  /** A lease just taken: a ping with our epoch, so the agent refuses the previous holder from
   *  now on, not only from our first push. Resolves with why it failed, or undefined. */
  announce?(vnode: string): Promise<string | undefined>;
}

/** Refusals an agent answers with when the state itself is wrong, not the path to it. */
function isRefusal(error: NetservaError): boolean {
  return error.code === "failed_precondition" || error.code === "invalid_argument";
}

/** The agent has seen a newer lease epoch than ours: another controller holds the vnode now. */
export function isFenced(error: NetservaError): boolean {
  return error.code === "failed_precondition" && error.field === "meta.lease_epoch";
}

/** deliver() may send once more over a connection of its own (see isRefusedStream). */
interface RetryingDeliver extends DeliverService {
  deliver(request: DeliverRequest, ownConnection?: boolean): Promise<DeliverOutcome>;
}

/** A connection opened ahead of a delivery by warm(). */
interface Warmed {
  client: AgentClient;
  close: () => void;
  leaseEpoch: bigint;
  /** Why the vnode did not answer the ping, or undefined when it did. */
  unreachable: string | undefined;
}

export function createDeliverService(options: DeliverServiceOptions): DeliverService {
  const warmed = new Map<string, Promise<Warmed | undefined>>();
  /** Closes every client warm() opened that no delivery took, also one still connecting. */
  const closers = new Set<() => void>();
  let closed = false;
  const clientFor = async (
    vnode: KnownVnode,
    ownConnection = false,
  ): Promise<{ client: AgentClient; close: () => void; live: boolean; linked: boolean }> => {
    const link = ownConnection ? undefined : options.linkFor?.(vnode.name);
    if (link) return { client: link.client, close: () => undefined, live: link.connected, linked: true };
    const revoked = new Set(await revokedSerials(options.db.em().fork()));
    const client = agentClientFor(options.paths, vnode, (serial) => revoked.has(serial), options.timeoutMs ?? 30_000);
    return { client, close: () => client.close(), live: false, linked: false };
  };
  /** Without a live link: a ping with a short deadline first (it also opens the connection the
   *  push then uses), so an unreachable vnode is an answer in seconds, not a held command. */
  const reachable = async (client: AgentClient, leaseEpoch: bigint): Promise<string | undefined> => {
    try {
      await client.call(
        "ping",
        create(PingRequestSchema, {
          meta: create(CommandMetaSchema, { requestId: randomUUID(), actor: "controller", leaseEpoch }),
        }),
        { timeoutMs: REACH_TIMEOUT_MS },
      );
      return undefined;
    } catch (error) {
      return `no answer to a ping within ${REACH_TIMEOUT_MS / 1000} s: ${NetservaError.from(error).message}`;
    }
  };

  const sendState = async (
    vnode: KnownVnode,
    client: AgentClient,
    request: DeliverRequest,
    leaseEpoch: bigint,
    compiled: (generation: number) => void,
  ): Promise<{ response: ApplyResponse; state: DesiredState }> => {
    const em = options.db.em().fork();
    if (!request.dryRun) await renewMailTlsIfDue(em, vnode, options.mailTls);
    const state = await compileDesiredState(em, vnode);
    compiled(Number(state.generation));
    if (!request.dryRun) killPointSoon(request.reconcile ? "reconcile-push-sent" : "push-sent");
    const response = await client.call(
      "applyState",
      create(ApplyStateRequestSchema, {
        meta: create(CommandMetaSchema, {
          requestId: randomUUID(),
          generation: state.generation,
          actor: request.actor,
          leaseEpoch,
        }),
        state,
        dryRun: request.dryRun === true,
      }),
      { timeoutMs: 120_000 },
    );
    return { response, state };
  };

  const sendChanges = async (
    client: AgentClient,
    request: DeliverRequest,
    changes: { generation: number; list: StateChange[] },
    leaseEpoch: bigint,
  ): Promise<ApplyResponse> => {
    const dryRun = request.dryRun === true;
    // A dry run's generation is not bumped: it is checked against the applied one as if it were.
    const base = dryRun ? changes.generation : changes.generation - 1;
    if (!dryRun) killPointSoon("push-sent");
    return client.call(
      "applyChanges",
      create(ApplyChangesRequestSchema, {
        meta: create(CommandMetaSchema, {
          requestId: randomUUID(),
          generation: BigInt(base + 1),
          actor: request.actor,
          leaseEpoch,
        }),
        baseGeneration: BigInt(base),
        changes: changes.list,
        dryRun,
      }),
    );
  };

  const backoff = options.refusalBackoff ?? DEFAULT_REFUSAL_BACKOFF;
  /** Remembers the refusal (status shows it) and when the reconciler may try the same again. */
  const recordRefusal = async (vnode: KnownVnode, generation: number, reason: string): Promise<void> => {
    const em = options.db.em().fork();
    const current = await em.findOne(Vnode, { id: vnode.id }, { fields: ["refusedGeneration", "refusedCount"] });
    const count = current?.refusedGeneration === generation ? (current.refusedCount ?? 0) + 1 : 1;
    const wait = Math.min(backoff.maxMs, backoff.firstMs * 2 ** (count - 1));
    const now = new Date();
    await em.nativeUpdate(
      Vnode,
      { id: vnode.id },
      {
        refusedGeneration: generation,
        refusedReason: reason,
        refusedAt: now,
        refusedCount: count,
        retryAt: new Date(now.getTime() + wait),
      },
    );
  };
  /** A connection warm() opened for this vnode with this epoch, taken (used once) or undefined. */
  const takeWarmed = async (name: string, leaseEpoch: bigint): Promise<Warmed | undefined> => {
    const pending = warmed.get(name);
    if (!pending) return undefined;
    warmed.delete(name);
    const warm = await pending;
    if (warm && warm.leaseEpoch !== leaseEpoch) {
      warm.close();
      return undefined;
    }
    return warm;
  };

  const deliverService: RetryingDeliver = {
    warm(name) {
      // A live fleet link is already connected: nothing to gain.
      if (options.linkFor || warmed.has(name)) return;
      if (closed) return;
      const opening = (async (): Promise<Warmed | undefined> => {
        const vnode = await timed("warm.vnode", () => options.db.em().fork().findOne(Vnode, { name }));
        if (!vnode || vnode.status !== "enrolled" || vnode.management === "unmanaged") return undefined;
        const leaseEpoch = options.epochFor ? options.epochFor(vnode.name) : 0n;
        if (leaseEpoch === undefined) return undefined;
        const { client, close } = await timed("warm.client", () => clientFor(vnode));
        // close() came first: nothing will take this one.
        if (closed) return void close();
        closers.add(close);
        const unreachable = await timed("warm.ping", () => reachable(client, leaseEpoch));
        return { client, close: () => void (closers.delete(close), close()), leaseEpoch, unreachable };
      })().catch(() => undefined); // deliver() then opens its own and reports what is wrong
      warmed.set(name, opening);
    },
    close() {
      closed = true;
      warmed.clear();
      for (const close of closers) close();
      closers.clear();
    },
    async announce(name) {
      const leaseEpoch = options.epochFor?.(name);
      if (leaseEpoch === undefined) return `this controller does not hold the lease on vnode ${name}`;
      const vnode = await options.db.em().fork().findOne(Vnode, { name, status: "enrolled" });
      if (!vnode) return `vnode ${name} is not enrolled`;
      const { client, close } = await clientFor(vnode);
      try {
        return await reachable(client, leaseEpoch);
      } finally {
        close();
      }
    },
    async deliver(request, ownConnection = false) {
      const em = options.db.em().fork();
      const vnode: KnownVnode | null =
        request.known?.name === request.vnode
          ? request.known
          : await timed("deliver.vnode", () => em.findOne(Vnode, { name: request.vnode }));
      if (!vnode) return { pushed: false, reason: `vnode ${request.vnode} not found`, diff: [] };
      const generation = request.changes?.generation ?? vnode.generation;
      if (vnode.status !== "enrolled")
        return {
          pushed: false,
          generation,
          reason: `vnode ${vnode.name} is ${vnode.status}: generation ${generation} is applied once its agent is enrolled`,
          diff: [],
        };
      if (vnode.management === "unmanaged")
        return {
          pushed: false,
          generation,
          reason: `vnode ${vnode.name} is unmanaged (${vnode.managementReason ?? "its agent keeps its hands off"}): generation ${generation} is stored; \`vnode manage ${vnode.name}\` or \`vnode adopt ${vnode.name}\` switches it`,
          diff: [],
        };
      const leaseEpoch = options.epochFor ? options.epochFor(vnode.name) : 0n;
      if (leaseEpoch === undefined)
        return {
          pushed: false,
          generation,
          reason: `this controller does not hold the lease on vnode ${vnode.name}: its holder pushes generation ${generation}`,
          diff: [],
        };
      const warm = await timed("deliver.warm-wait", () => takeWarmed(vnode.name, leaseEpoch));
      const { client, close, live, linked } = warm
        ? { ...warm, live: false, linked: false }
        : await timed("deliver.client", () => clientFor(vnode, ownConnection));
      let attempted = generation;
      try {
        const unreachable = warm
          ? warm.unreachable
          : live
            ? undefined
            : await timed("deliver.connect", () => reachable(client, leaseEpoch));
        if (unreachable !== undefined)
          return {
            pushed: false,
            generation,
            reason: `vnode ${vnode.name} unreachable (${unreachable}); the reconciler applies generation ${generation} when it is back`,
            diff: [],
          };
        let response: ApplyResponse | undefined;
        let state: DesiredState | undefined;
        if (request.changes && request.changes.list.length <= MAX_INCREMENTAL_CHANGES) {
          const changes = request.changes;
          response = await timed("deliver.apply-changes", () => sendChanges(client, request, changes, leaseEpoch));
          // The agent was not at the base generation: it asks for the whole state instead.
          if (response.needsFullState) response = undefined;
        }
        if (!response)
          ({ response, state } = await sendState(vnode, client, request, leaseEpoch, (g) => (attempted = g)));
        const applied = Number(response.appliedGeneration);
        if (!request.dryRun) {
          killPoint("push-applied");
          await timed("deliver.bookkeeping", () => recordDelivery(em, vnode.id, applied));
        }
        return {
          pushed: !request.dryRun,
          appliedGeneration: applied,
          generation: state ? Number(state.generation) : generation,
          stateDigest: response.stateDigest,
          diff: response.diff,
          ...(state ? { state } : {}),
        };
      } catch (reason) {
        // The fleet's link refused the stream (HTTP/2 REFUSED_STREAM: the agent did nothing with
        // it, so sending again is safe): once more on a connection of its own.
        if (linked && isRefusedStream(reason)) {
          close();
          return deliverService.deliver(request, true);
        }
        const error = NetservaError.from(reason);
        // Not a verdict on the state: we were deposed; the new holder pushes it.
        if (isFenced(error))
          return {
            pushed: false,
            generation: attempted,
            fenced: true,
            reason: `vnode ${vnode.name} refused our lease epoch ${leaseEpoch}: ${error.message}`,
            diff: [],
          };
        if (isRefusal(error)) {
          if (!request.dryRun) await recordRefusal(vnode, attempted, error.message);
          return {
            pushed: false,
            generation: attempted,
            refused: error.message,
            reason: `vnode ${vnode.name} refused generation ${attempted}: ${error.message}`,
            diff: [],
          };
        }
        return {
          pushed: false,
          generation,
          reason: `vnode ${vnode.name} unreachable (${error.message}); the reconciler applies generation ${generation} when it is back`,
          diff: [],
        };
      } finally {
        close();
      }
    },
  };
  return deliverService;
}

/** UNAVAILABLE because the server refused the HTTP/2 stream before any handler saw it (grpc-js's
 *  words for RST_STREAM REFUSED_STREAM). */
function isRefusedStream(reason: unknown): boolean {
  const error = NetservaError.from(reason);
  return error.code === "unavailable" && /stream refused/i.test(error.message);
}

/**
 * The deliver service of a CLI process (no fleet of its own: each delivery opens its client).
 * On PostgreSQL it never pushes itself (a dry run aside, which changes nothing): a push from here
 * would carry no lease epoch, and an unfenced whole state racing the holder that takes the lease
 * meanwhile could land after that holder's newer one. It wakes the holder and waits, bounded, for
 * its report (holder-wait.ts); with no live holder but a live controller it waits the same way
 * for one to take the lease (it pushes what is owed at once, lease-keeper.ts); with no live
 * controller at all it says so: the change is stored and the next holder pushes it. The embedded
 * database belongs to one process: there the CLI pushes directly, as before.
 */
export function deliverServiceFor(db: Database, paths: HomePaths): DeliverService {
  const direct = createDeliverService({ db, paths, mailTls: mailTlsIssuerFor(paths, mailTlsLifetime(paths)) });
  return {
    // On PostgreSQL a lease holder (serve) usually pushes: nothing is opened ahead there.
    warm: (vnode) => (db.kind === "postgresql" ? undefined : direct.warm?.(vnode)),
    close: () => direct.close?.(),
    async deliver(request) {
      if (request.dryRun || db.kind !== "postgresql") return direct.deliver(request);
      const vnode = await pushable(db, request.vnode);
      // Not enrolled, unmanaged, gone: nothing is pushed whoever asks; the direct path says why.
      if (!vnode) return direct.deliver(request);
      const generation = request.changes?.generation ?? vnode.generation;
      const holder = await leaseHolder(db, request.vnode);
      await notifyHolder(db, request.vnode);
      if (holder) return awaitHolderPush(db, request.vnode, generation, holder);
      if (!(await controllersAlive(db)))
        return {
          pushed: false,
          generation,
          reason: `no controller holds vnode ${request.vnode}'s lease (no serve runs on this database): generation ${generation} is stored, and the controller that takes the lease pushes it`,
          diff: [],
        };
      return awaitHolderPush(db, request.vnode, generation, undefined);
    },
  };
}

/** Whether any serve process on this database is alive (its heartbeat within a lease TTL). */
async function controllersAlive(db: Database): Promise<boolean> {
  const rows = await db
    .em()
    .getConnection()
    .execute<Array<{ alive: boolean }>>(
      "select exists (select 1 from controllers where heartbeat_at > now() - make_interval(secs => ?)) as alive",
      [LEASE_TTL_MS / 1000],
    );
  return rows[0]?.alive === true;
}

/** The vnode's desired generation when a holder would push it (enrolled and managed). */
async function pushable(db: Database, vnode: string): Promise<{ generation: number } | undefined> {
  const rows = await db
    .em()
    .getConnection()
    .execute<Array<{ generation: string | number }>>(
      "select generation from vnodes where name = ? and status = 'enrolled' and coalesce(management, '') <> 'unmanaged'",
      [vnode],
    );
  return rows[0] ? { generation: Number(rows[0].generation) } : undefined;
}

/** controller.json's mailTlsCertificateSeconds; the default when the home has no readable config. */
function mailTlsLifetime(paths: HomePaths): number | undefined {
  try {
    return readControllerConfig(paths.config).mailTlsCertificateSeconds;
  } catch {
    return undefined;
  }
}
