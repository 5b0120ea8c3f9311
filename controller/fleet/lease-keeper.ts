// Vnode leases: with several `serve` processes on one PostgreSQL each vnode is driven by exactly
// one of them, the holder of its row in vnode_leases. Every `renewMs` the keeper writes its
// heartbeat, renews what it holds, and moves towards its fair share of the fleet (the enrolled
// vnodes divided among the controllers whose heartbeat is fresh, in id order): above it, it
// releases the surplus; below it, it takes free or expired leases with one conditional UPDATE
// that bumps the epoch. The epoch is the fence token every command carries (agents refuse an
// older one). Expiry is compared on the database's clock (now()); our own clock only decides when
// we stop: a lease renewed at local time t is used until t + ttl - margin, which is never after
// the database lets someone else take it, so a holder cut off from PostgreSQL stops pushing by
// itself before its successor starts.
import { randomUUID } from "node:crypto";
import { Pool } from "pg";
import type { Logger } from "../../common/log.ts";
import { CONNECT_TIMEOUT_MS, QUERY_TIMEOUT_MS, type Database } from "../db/open-database.ts";
import { LEASE_RENEW_MS, LEASE_TTL_MS } from "../db/lease-timing.ts";

export { LEASE_RENEW_MS, LEASE_TTL_MS };

/** Subtracted from the local validity of a lease: clock rate differences, a slow statement. */
const LOCAL_MARGIN_MS = 1000;

export interface HeldLease {
  vnodeId: number;
  vnode: string;
  epoch: bigint;
}

export interface LeaseKeeperOptions {
  db: Database;
  /** This controller's name (controller.json), for the heartbeat row and the logs. */
  name: string;
  /** The ids of the CA key-encryption keys this controller holds, for `ca rekey`'s check. */
  kekIds?: readonly string[];
  log: Logger;
  ttlMs?: number;
  renewMs?: number;
  /** Leases gained and lost (released, taken over, lapsed by our clock); the fleet links follow. */
  onChange?(gained: HeldLease[], lost: HeldLease[]): void;
  /**
   * Fault switch for the fencing test: never stop on our own clock and never drop a lease the
   * database no longer gives us, as a paused or clock-broken holder would. Only the agents'
   * fence then stops its pushes.
   */
  ignoreLapse?: boolean;
}

export interface LeaseKeeper {
  /** This serve's id in the controllers and vnode_leases tables (new per process). */
  readonly id: string;
  /** The epoch to send to `vnode`; undefined when we do not hold its lease or it lapsed by our clock. */
  epochOf(vnode: string): bigint | undefined;
  held(): HeldLease[];
  /** One round now (heartbeat, renew, rebalance); what the timer runs. */
  tick(): Promise<void>;
  /** Stops renewing and hands every lease back at once (a clean stop needs no TTL to pass). */
  stop(): Promise<void>;
}

interface Entry extends HeldLease {
  /** performance.now() until which we may push with this lease. */
  validUntil: number;
}

type Row = { vnode_id: number; name: string; epoch: string | number };

export function startLeaseKeeper(options: LeaseKeeperOptions): LeaseKeeper {
  const id = randomUUID();
  const ttlMs = options.ttlMs ?? LEASE_TTL_MS;
  const ttlSeconds = ttlMs / 1000;
  const leases = new Map<string, Entry>();
  let running: Promise<void> | undefined;
  let stopped = false;
  let failing = false;
  let rounds = 0;
  // The renewals on a connection of their own, not the shared pool: a restart gains a thousand
  // leases at once, and the work that follows (a link, a trust push, a reconcile and a usage sync
  // per vnode) queued hundreds of statements on the pool's ten connections. A renewal waiting
  // behind them for longer than the TTL let every lease lapse by our clock, every link dropped,
  // the next round gained them all again, and the fleet never came back (issue 16, 1,000 agents).
  const own = options.db.url
    ? new Pool({
        connectionString: options.db.url,
        max: 1,
        // A renewal that has not answered within a TTL is of no use: the next round tries again.
        connectionTimeoutMillis: Math.min(CONNECT_TIMEOUT_MS, ttlMs),
        query_timeout: Math.min(QUERY_TIMEOUT_MS, ttlMs),
        keepAlive: true,
        keepAliveInitialDelayMillis: 5000,
      })
    : undefined;
  // An idle connection that breaks is dropped from the pool; the next round opens another.
  own?.on("error", (error: Error) => options.log.warn("lease connection failed", { error: error.message }));
  const sql = async <T extends Array<Record<string, unknown>> = Array<Record<string, unknown>>>(
    text: string,
    params: unknown[] = [],
  ): Promise<T> => {
    if (!own) return options.db.em().getConnection().execute<T>(text, params);
    let n = 0;
    const result = await own.query(
      text.replace(/\?/g, () => `$${++n}`),
      params,
    );
    return result.rows as T;
  };

  const entry = (row: Row, validUntil: number): Entry => ({
    vnodeId: row.vnode_id,
    vnode: row.name,
    epoch: BigInt(String(row.epoch)),
    validUntil,
  });
  const lapsed = (e: Entry): boolean => !options.ignoreLapse && performance.now() >= e.validUntil;

  /** Leases whose local validity ran out (renewals failing): dropped, pushes stop. */
  const dropLapsed = (): HeldLease[] => {
    const lost: HeldLease[] = [];
    for (const [name, e] of leases)
      if (lapsed(e)) {
        leases.delete(name);
        lost.push(e);
        options.log.warn("lease lapsed by our clock: pushing to the vnode stopped", {
          vnode: name,
          epoch: e.epoch.toString(),
        });
      }
    return lost;
  };

  const round = async (): Promise<void> => {
    const started = performance.now();
    const validUntil = started + ttlMs - LOCAL_MARGIN_MS;
    const gained: HeldLease[] = [];
    const lost: HeldLease[] = [];
    try {
      await sql(
        "insert into controllers (id, name, kek_ids) values (?, ?, ?) on conflict (id) do update set heartbeat_at = now()",
        [id, options.name, options.kekIds?.length ? options.kekIds.join(",") : null],
      );
      await sql(
        "insert into vnode_leases (vnode_id) select id from vnodes where status = 'enrolled' on conflict do nothing",
      );
      const renewed = await sql<Row[]>(
        `update vnode_leases l set expires_at = now() + make_interval(secs => ?)
         from vnodes v where v.id = l.vnode_id and l.holder = ? and v.status = 'enrolled'
         returning l.vnode_id, v.name, l.epoch`,
        [ttlSeconds, id],
      );
      const still = new Set(renewed.map((r) => r.name));
      for (const [name, e] of leases)
        if (!still.has(name) && !options.ignoreLapse) {
          leases.delete(name);
          lost.push(e);
          options.log.warn("lease lost to another controller", { vnode: name, epoch: e.epoch.toString() });
        }
      for (const row of renewed) {
        const known = leases.get(row.name);
        if (known && known.epoch === BigInt(String(row.epoch))) known.validUntil = validUntil;
        else {
          const fresh = entry(row, validUntil);
          leases.set(row.name, fresh);
          gained.push(fresh);
        }
      }
      const target = await fairShare();
      if (leases.size > target) await release(leases.size - target, lost);
      const want = target - leases.size;
      // Below our share, take free or expired leases; at it, take only those nobody took for a
      // whole TTL (a share miscounted while controllers come and go must not strand a vnode).
      const taken = await take(want > 0 ? want : 1, want > 0 ? 0 : ttlSeconds);
      for (const row of taken) {
        const fresh = entry(row, validUntil);
        leases.set(row.name, fresh);
        gained.push(fresh);
        options.log.info("lease taken", { vnode: row.name, epoch: fresh.epoch.toString() });
      }
      // Each serve process is a new id: rows of those gone a day are of no more use.
      if (++rounds % 100 === 1) await sql("delete from controllers where heartbeat_at < now() - interval '1 day'");
      if (failing) options.log.info("lease renewals work again", { held: leases.size });
      failing = false;
    } catch (error) {
      if (!failing) options.log.warn("lease renewal failed", { error: String(error) });
      failing = true;
    }
    lost.push(...dropLapsed());
    if (gained.length || lost.length) options.onChange?.(gained, lost);
  };

  /** How many vnodes this controller should hold: enrolled vnodes over live controllers, the
   *  remainder going to the first ones in id order. */
  const fairShare = async (): Promise<number> => {
    const live = await sql<Array<{ id: string }>>(
      "select id from controllers where heartbeat_at > now() - make_interval(secs => ?) order by id",
      [ttlSeconds],
    );
    const [count] = await sql<Array<{ n: string | number }>>(
      "select count(*) as n from vnodes where status = 'enrolled'",
    );
    const vnodes = Number(count?.n ?? 0);
    const controllers = Math.max(1, live.length);
    const rank = Math.max(
      0,
      live.findIndex((row) => row.id === id),
    );
    return Math.floor(vnodes / controllers) + (rank < vnodes % controllers ? 1 : 0);
  };

  /** Hands back `count` leases: we stop using them first, then free the rows. */
  const release = async (count: number, lost: HeldLease[]): Promise<void> => {
    const surplus = [...leases.values()].sort((a, b) => b.vnodeId - a.vnodeId).slice(0, count);
    for (const e of surplus) {
      leases.delete(e.vnode);
      lost.push(e);
    }
    await sql(
      `update vnode_leases set holder = null, expires_at = now() where holder = ? and vnode_id in (${surplus.map(() => "?").join(", ")})`,
      [id, ...surplus.map((e) => e.vnodeId)],
    );
    options.log.info("leases released to rebalance", { vnodes: surplus.map((e) => e.vnode).join(",") });
  };

  /** One conditional UPDATE: free or expired (for `freeForSeconds` at least) rows become ours
   *  with the epoch bumped; rows another controller is taking right now are skipped. */
  const take = (count: number, freeForSeconds: number): Promise<Row[]> =>
    sql<Row[]>(
      `with taken as (
         update vnode_leases set holder = ?, epoch = epoch + 1, taken_at = now(),
           expires_at = now() + make_interval(secs => ?)
         where vnode_id in (
           select l.vnode_id from vnode_leases l join vnodes v on v.id = l.vnode_id
           where v.status = 'enrolled'
             and (l.expires_at is null or l.expires_at <= now() - make_interval(secs => ?))
           order by l.vnode_id limit ? for update of l skip locked)
         and (expires_at is null or expires_at <= now() - make_interval(secs => ?))
         returning vnode_id, epoch)
       select t.vnode_id, v.name, t.epoch from taken t join vnodes v on v.id = t.vnode_id`,
      [id, ttlSeconds, freeForSeconds, count, freeForSeconds],
    );

  const tick = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    running ??= round().finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void tick(), options.renewMs ?? LEASE_RENEW_MS);
  void tick();

  return {
    id,
    epochOf(vnode) {
      const e = leases.get(vnode);
      return e && !lapsed(e) ? e.epoch : undefined;
    },
    held: () => [...leases.values()].filter((e) => !lapsed(e)),
    tick,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
      const mine = [...leases.values()];
      leases.clear();
      if (mine.length) options.onChange?.([], mine);
      // Best effort: a database that does not answer lets the leases expire instead.
      await Promise.race([
        (async () => {
          await sql("update vnode_leases set holder = null, expires_at = now() where holder = ?", [id]);
          await sql("delete from controllers where id = ?", [id]);
        })().catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 3000).unref()),
      ]);
      // A connection black-holed mid-query would hold end() until the query timeout.
      if (own)
        await Promise.race([
          own.end().catch(() => undefined),
          new Promise((resolve) => setTimeout(resolve, 3000).unref()),
        ]);
    },
  };
}
