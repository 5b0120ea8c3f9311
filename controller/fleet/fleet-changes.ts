// What the fleet's links depend on, read incrementally: the vnodes (address, status, generation)
// and the certificates (revocations) changed since the previous read. Triggers stamp each such
// change with its transaction id (migration 0017); a read returns the rows stamped at or past the
// oldest transaction still running at the previous read, and notes the oldest one running now.
// A transaction that commits late (it began before a read and committed after it) is still at or
// past that mark, so it is read the next time; everything before the mark was visible to the
// previous read. The first read returns everything. With nothing changed a read returns no rows:
// the refresh every 2 s costs two index probes instead of a thousand rows parsed on the event loop.
import type { Database } from "../db/open-database.ts";

export interface FleetVnodeRow {
  id: number;
  name: string;
  address: string;
  status: string;
  generation: number;
}

export interface FleetCertificateRow {
  serial: string;
  vnodeId: number | null;
  revoked: boolean;
  notAfter: Date;
}

export interface FleetChanges {
  vnodes: FleetVnodeRow[];
  certificates: FleetCertificateRow[];
}

export interface FleetChangeReader {
  /** The rows changed since the previous read (every row the first time). Not concurrently. */
  read(): Promise<FleetChanges>;
}

/** One statement per table, so the rows and the mark come from the same snapshot. The left join
 *  keeps the mark when no row changed. */
const since = (table: string, columns: string, where: string): string =>
  `select mark.xmin::text as mark, ${columns}
     from (select pg_snapshot_xmin(pg_current_snapshot()) as xmin) mark
     left join ${table} t on ${where}`;

export function createFleetChangeReader(db: Database): FleetChangeReader {
  let vnodesMark: string | undefined;
  let certificatesMark: string | undefined;
  const connection = (): ReturnType<ReturnType<Database["em"]>["getConnection"]> => db.em().getConnection();
  return {
    async read() {
      // Rows the triggers never stamped (written before migration 0017) are read the first time only.
      const vnodeRows = await connection().execute<
        Array<{
          mark: string;
          id: number | null;
          name: string;
          address: string;
          status: string;
          generation: string | number;
        }>
      >(
        since(
          "vnodes",
          "t.id, t.name, t.address, t.status, t.generation",
          vnodesMark === undefined ? "true" : "t.fleet_xid >= ?::xid8",
        ),
        vnodesMark === undefined ? [] : [vnodesMark],
      );
      const certificateRows = await connection().execute<
        Array<{
          mark: string;
          serial: string | null;
          vnode_id: number | null;
          revoked: boolean;
          not_after: Date | string;
        }>
      >(
        since(
          "certificates",
          "t.serial, t.vnode_id, t.revoked_at is not null as revoked, t.not_after",
          // The first read needs only the revoked ones; later reads every change (an unrevoked row too).
          certificatesMark === undefined ? "t.revoked_at is not null" : "t.fleet_xid >= ?::xid8",
        ),
        certificatesMark === undefined ? [] : [certificatesMark],
      );
      vnodesMark = vnodeRows[0]?.mark ?? vnodesMark;
      certificatesMark = certificateRows[0]?.mark ?? certificatesMark;
      return {
        vnodes: vnodeRows
          .filter((r) => r.id !== null)
          .map((r) => ({
            id: Number(r.id),
            name: r.name,
            address: r.address,
            status: r.status,
            generation: Number(r.generation),
          })),
        certificates: certificateRows
          .filter((r): r is typeof r & { serial: string } => r.serial !== null)
          .map((r) => ({
            serial: r.serial,
            vnodeId: r.vnode_id,
            revoked: r.revoked,
            notAfter: new Date(r.not_after),
          })),
      };
    },
  };
}
