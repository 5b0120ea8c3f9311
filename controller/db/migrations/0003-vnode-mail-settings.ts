import { Migration } from "@mikro-orm/migrations";

/** What a vnode's mail daemons need from the controller beyond the mail data: host name, listen
 * addresses, filters, and the TLS certificate they present. */
export class Migration0003VnodeMailSettings extends Migration {
  override name = "0003-vnode-mail-settings";

  override up(): void {
    this.addSql(`alter table vnodes
      add column mail_hostname text null,
      add column mail_listen jsonb null,
      add column rspamd_enabled boolean not null default false,
      add column clamav_enabled boolean not null default false,
      add column fs_capacity_bytes bigint null`);
    this.addSql(`create table mail_tls (
      id serial primary key,
      vnode_id int not null unique references vnodes(id) on delete cascade,
      source text not null,
      hostname text not null,
      certificate_chain_pem text not null,
      private_key_pem text not null,
      not_after timestamptz not null,
      updated_at timestamptz not null default now())`);
  }

  override down(): void {
    this.addSql("drop table if exists mail_tls");
    this.addSql(
      "alter table vnodes drop column mail_hostname, drop column mail_listen, drop column rspamd_enabled, drop column clamav_enabled, drop column fs_capacity_bytes",
    );
  }
}
