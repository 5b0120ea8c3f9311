// Who drives which vnode (several controllers on one PostgreSQL): each enrolled vnode's lease,
// its holder by name, its epoch and how long it has left on the database's clock, read in one
// query. The embedded database has one controller and no lease rows.
import type { SqlEntityManager } from "@mikro-orm/sql";

export interface LeaseRow {
  vnode: string;
  /** The holder's controller name (controller.json); null when free or expired. */
  controller: string | null;
  epoch: number;
  /** Seconds before the lease expires unless renewed; null when free or expired. */
  expiresInSeconds: number | null;
  /** Live controllers (heartbeat within the TTL) share the fleet among themselves. */
  controllerAlive: boolean;
}

export async function leaseReport(em: SqlEntityManager, ttlSeconds: number): Promise<LeaseRow[]> {
  const rows = await em.getConnection().execute<
    Array<{
      vnode: string;
      controller: string | null;
      epoch: string | number | null;
      expires_in: string | number | null;
      alive: boolean | null;
    }>
  >(
    `select v.name as vnode, case when l.expires_at > now() then c.name end as controller,
            coalesce(l.epoch, 0) as epoch,
            case when l.expires_at > now() then extract(epoch from l.expires_at - now()) end as expires_in,
            coalesce(c.heartbeat_at > now() - make_interval(secs => ?), false) as alive
       from vnodes v left join vnode_leases l on l.vnode_id = v.id left join controllers c on c.id = l.holder
      where v.status = 'enrolled' order by v.name`,
    [ttlSeconds],
  );
  return rows.map((r) => ({
    vnode: r.vnode,
    controller: r.controller,
    epoch: Number(r.epoch ?? 0),
    expiresInSeconds: r.expires_in === null ? null : Math.round(Number(r.expires_in) * 10) / 10,
    controllerAlive: r.alive === true && r.controller !== null,
  }));
}
