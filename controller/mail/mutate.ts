// The one path every mail mutation takes: validate and prepare (parsing, hashing, DNS) outside
// any transaction; then, in one transaction, lock and bump the vnode's generation by exactly 1
// (the row lock also serialises changes per vnode, so the rule checks below cannot race), apply
// the change, and write the command log row. A dry run does all of it and rolls back. A
// refusal rolls back and is logged afterwards. When the caller's entity manager is already in a
// transaction (an import batch), each mutation is a savepoint inside it.
import { randomUUID } from "node:crypto";
import { UniqueConstraintViolationException } from "@mikro-orm/core";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError, conflict, notFound } from "../../common/errors.ts";
import type { StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { parseRequestId, parseVnodeName } from "../../common/validation/index.ts";
import type { MailServiceContext, MutationResult } from "./mail-api.ts";
import { resultOf, writeMutationLog } from "./mutation-log.ts";
import { killPoint } from "../faults/kill-points.ts";
import { asDatabaseError } from "../db/database-errors.ts";
import { recordChange } from "../db/change-feed.ts";
import { timed } from "../../common/phase-timing.ts";

export interface VnodeRow {
  id: number;
  name: string;
  status: string;
  generation: number;
  /** Bytes of the vnode's mail filesystem as its agent last reported them; undefined = unknown. */
  capacity: number | undefined;
  /** What the push needs (MutationResult.vnodeRow): where the agent listens, managed or not. */
  address: string;
  management: string | null;
  managementReason: string | null;
  mailHostname: string | null;
}

export interface MutationTx {
  em: SqlEntityManager;
  vnode: VnodeRow;
  now: Date;
  /** The vnode's mail filesystem size as last reported (undefined = unknown or not asked for). */
  capacity: number | undefined;
  /** The transaction will be rolled back: a generated password must not be shown (never stored). */
  dryRun: boolean;
}

export interface Applied<T> {
  value: T;
  changes: StateChange[];
  domainChanged?: boolean;
  /** Nothing was changed after all (a batch whose items were all refused): roll back, log why. */
  noop?: string;
}

export interface MutationSpec<P, T> {
  command: string;
  vnode: string;
  /** What the command log records; never a password. */
  args: Record<string, unknown>;
  dryRun?: boolean | undefined;
  requestId?: string | undefined;
  /** Ask ctx.vnodeCapacity (before the transaction, so a slow answer never holds the lock). */
  needsCapacity?: boolean;
  /** Pure input checks and slow work (hashing, DNS) done before the vnode is locked. */
  prepare(): Promise<P> | P;
  apply(tx: MutationTx, prepared: P): Promise<Applied<T>>;
}

/** Thrown out of the transaction to roll it back while keeping what was computed. */
class Rollback<T> extends Error {
  readonly applied: Applied<T>;
  constructor(applied: Applied<T>) {
    super("rollback");
    this.applied = applied;
  }
}

/** Unique violations from a concurrent change become clean conflicts, never internal errors. */
function normalise(reason: unknown): NetservaError {
  if (reason instanceof UniqueConstraintViolationException) {
    const what = /mail_vboxes/.test(reason.message)
      ? "the mailbox"
      : /mail_valias/.test(reason.message)
        ? "the alias"
        : /mail_vhosts/.test(reason.message)
          ? "the domain"
          : /vconfs/.test(reason.message)
            ? "the variable"
            : "the record";
    return conflict(`${what} already exists (a concurrent change created it first)`);
  }
  return NetservaError.from(reason);
}

/** Hostile input is recorded as given, but cut short; absent options are left out, not null. */
function logArgs(args: Record<string, unknown>): Record<string, unknown> {
  const cut = (v: unknown): unknown =>
    typeof v === "string" && v.length > 256 ? `${v.slice(0, 256)}…` : Array.isArray(v) ? v.slice(0, 1000).map(cut) : v;
  return Object.fromEntries(
    Object.entries(args)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, cut(v)]),
  );
}

async function lockVnode(em: SqlEntityManager, name: string): Promise<VnodeRow> {
  const rows = await em.execute<
    Array<{
      id: number;
      name: string;
      status: string;
      generation: string | number;
      capacity: string | number | null;
      address: string;
      management: string | null;
      management_reason: string | null;
      mail_hostname: string | null;
    }>
  >(
    `update vnodes set generation = generation + 1 where name = ?
     returning id, name, status, generation, fs_capacity_bytes as capacity, address, management, management_reason, mail_hostname`,
    [name],
  );
  const row = rows[0];
  if (!row)
    throw notFound(
      `vnode '${name}' not found: see \`netserva-mail status\`, or add it with \`netserva-mail vnode add\``,
    );
  if (row.status === "revoked")
    throw conflict(`vnode '${name}' is revoked: its mail data can no longer be changed`, "failed_precondition");
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    generation: Number(row.generation),
    capacity: row.capacity === null ? undefined : Number(row.capacity),
    address: row.address,
    management: row.management,
    managementReason: row.management_reason,
    mailHostname: row.mail_hostname,
  };
}

/** The row's fields a push needs (MutationResult.vnodeRow), and only those. */
function knownOf(row: VnodeRow): NonNullable<MutationResult<unknown>["vnodeRow"]> {
  const { id, name, address, status, generation, management, managementReason, mailHostname } = row;
  return { id, name, address, status, generation, management, managementReason, mailHostname };
}

export function createMutator(ctx: MailServiceContext) {
  return async function mutate<P, T>(spec: MutationSpec<P, T>): Promise<MutationResult<T>> {
    const startedAt = performance.now();
    let requestId: string = randomUUID();
    const dryRun = spec.dryRun === true;
    const args = logArgs(dryRun ? { ...spec.args, dryRun } : spec.args);
    const batch = ctx.em.isInTransaction();
    let vnodeName: string | null = null;
    let generation: number | null = null;
    let locked: VnodeRow | undefined;
    const log = (em: SqlEntityManager, result: "ok" | "refused" | "error", error: string | null) =>
      writeMutationLog(em, {
        actor: ctx.actor,
        command: spec.command,
        vnodeName,
        requestId,
        generation,
        result,
        error,
        startedAt,
        args,
      });
    try {
      if (spec.requestId !== undefined) requestId = parseRequestId(spec.requestId, "requestId");
      const name = parseVnodeName(spec.vnode, "vnode");
      vnodeName = name;
      // The capacity comes with the vnode row's lock (no statement of its own); one a caller
      // supplies instead (tests) is asked while the input is prepared.
      const [prepared, asked] = await Promise.all([
        timed("mutation.prepare", async () => spec.prepare()),
        spec.needsCapacity && ctx.vnodeCapacity
          ? timed("mutation.capacity", () => ctx.vnodeCapacity?.(name) ?? Promise.resolve(undefined))
          : undefined,
      ]);
      const base = batch ? ctx.em : ctx.em.fork();
      const applied = await timed("mutation.transaction", () =>
        base.transactional(
          async (em) => {
            const vnode = await lockVnode(em, name);
            generation = vnode.generation;
            locked = vnode;
            const capacity = !spec.needsCapacity ? undefined : ctx.vnodeCapacity ? asked : vnode.capacity;
            const tx: MutationTx = { em, vnode, now: new Date(), capacity, dryRun };
            const result = await spec.apply(tx, prepared);
            if (dryRun || result.noop !== undefined) throw new Rollback(result);
            // For the vnode's lease holder (several controllers): pushed when this commits.
            await recordChange(
              em,
              {
                vnodeId: vnode.id,
                vnode: vnode.name,
                generation: vnode.generation,
                actor: ctx.actor,
                changes: result.changes,
              },
              ctx.notifyHolder !== false,
            );
            await log(em, "ok", null);
            if (!batch) killPoint("mutation-before-commit");
            return result;
          },
          { propagation: "nested", clear: true },
        ),
      );
      if (!batch) killPoint("mutation-after-commit");
      return {
        value: applied.value,
        vnode: name,
        generation: generation ?? 0,
        changes: applied.changes,
        domainChanged: applied.domainChanged ?? false,
        dryRun: false,
        requestId,
        ...(locked ? { vnodeRow: knownOf(locked) } : {}),
      };
    } catch (reason) {
      if (reason instanceof Rollback) {
        const applied = (reason as Rollback<T>).applied;
        generation = (generation ?? 1) - 1;
        const noop = applied.noop !== undefined;
        await log(batch ? ctx.em : ctx.em.fork(), noop ? "refused" : "ok", applied.noop ?? null);
        return {
          value: applied.value,
          vnode: vnodeName ?? "",
          generation,
          changes: noop ? [] : applied.changes,
          domainChanged: !noop && (applied.domainChanged ?? false),
          dryRun,
          requestId,
        };
      }
      const error = normalise(reason);
      generation = null;
      // An unreachable database cannot take the log row either: trying would hold the command
      // for another connect or query timeout before the same answer.
      if (asDatabaseError(reason).code !== "unavailable")
        await log(batch ? ctx.em : ctx.em.fork(), resultOf(error.code), error.message).catch(() => undefined);
      throw error;
    }
  };
}

export type Mutate = ReturnType<typeof createMutator>;
