import { Migration } from "@mikro-orm/migrations";

/** Several controllers on one PostgreSQL: each serve's heartbeat row, one lease row per vnode
 * (holder, epoch = the fence token agents check, expiry on the database's clock), and the
 * committed lookup changes not yet applied (what the holder pushes when it is notified). */
export class Migration0011VnodeLeases extends Migration {
  override name = "0011-vnode-leases";

  override up(): void {
    this.addSql(`create table controllers (
      id text primary key,
      name text not null,
      started_at timestamptz not null default now(),
      heartbeat_at timestamptz not null default now())`);
    this.addSql(`create table vnode_leases (
      vnode_id int primary key references vnodes(id) on delete cascade,
      holder text null,
      epoch bigint not null default 0,
      expires_at timestamptz null,
      taken_at timestamptz null)`);
    this.addSql(`create table vnode_changes (
      vnode_id int not null references vnodes(id) on delete cascade,
      generation bigint not null,
      actor text not null,
      changes bytea not null,
      created_at timestamptz not null default now(),
      primary key (vnode_id, generation))`);
  }

  override down(): void {
    this.addSql("drop table if exists vnode_changes");
    this.addSql("drop table if exists vnode_leases");
    this.addSql("drop table if exists controllers");
  }
}
