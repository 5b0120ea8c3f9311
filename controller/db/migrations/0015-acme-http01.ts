import { Migration } from "@mikro-orm/migrations";

/** ACME HTTP-01: per vnode the address of the agent's plain-HTTP challenge listener, and the
 * challenges an order has pending there (pushed with the desired state, removed after the order). */
export class Migration0015AcmeHttp01 extends Migration {
  override name = "0015-acme-http01";

  override up(): void {
    this.addSql("alter table vnodes add column http_listen text null");
    this.addSql(`create table acme_http_challenges (
      vnode_id integer not null references vnodes(id) on delete cascade,
      token text not null,
      key_authorization text not null,
      created_at timestamptz not null default now(),
      primary key (vnode_id, token))`);
  }

  override down(): void {
    this.addSql("drop table if exists acme_http_challenges");
    this.addSql("alter table vnodes drop column http_listen");
  }
}
