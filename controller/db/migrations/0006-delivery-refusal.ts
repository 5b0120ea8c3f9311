import { Migration } from "@mikro-orm/migrations";

/** A desired state the vnode's agent refused: which generation, the checker's words, how often,
 * and when the reconciler tries again (capped backoff instead of resending every few seconds). */
export class Migration0006DeliveryRefusal extends Migration {
  override name = "0006-delivery-refusal";

  override up(): void {
    this.addSql(`alter table vnodes
      add column refused_generation bigint null,
      add column refused_reason text null,
      add column refused_at timestamptz null,
      add column refused_count int not null default 0,
      add column retry_at timestamptz null`);
  }

  override down(): void {
    this.addSql(
      "alter table vnodes drop column refused_generation, drop column refused_reason, drop column refused_at, drop column refused_count, drop column retry_at",
    );
  }
}
