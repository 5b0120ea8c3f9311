import { Migration } from "@mikro-orm/migrations";

/** A little mail health history per vnode (one sample a minute, a day kept): enough for
 * `mail:status` to show trends (queue growing, disk filling) without a time-series database. */
export class Migration0005HealthHistory extends Migration {
  override name = "0005-health-history";

  override up(): void {
    this.addSql(`create table mail_health_history (
      id bigserial primary key,
      vnode_id int not null references vnodes(id) on delete cascade,
      at timestamptz not null,
      applied_generation bigint not null default 0,
      drift boolean not null default false,
      services_down int not null default 0,
      queue_active int null,
      queue_deferred int null,
      queue_hold int null,
      queue_incoming int null,
      oldest_deferred_seconds double precision null,
      dovecot_users int null,
      rspamd_scanned bigint null,
      fs_used_bytes bigint null,
      fs_size_bytes bigint null,
      quota_over90 int null)`);
    this.addSql("create index mail_health_history_vnode_at on mail_health_history (vnode_id, at desc)");
  }

  override down(): void {
    this.addSql("drop table if exists mail_health_history");
  }
}
