import { Migration } from "@mikro-orm/migrations";

/** Certificates by name for a vnode (the SNI seam: ACME and others add rows, the compiler pushes
 * them) and where the vnode serves MTA-STS, autoconfig and autodiscover. */
export class Migration0008ServedCertificates extends Migration {
  override name = "0008-served-certificates";

  override up(): void {
    this.addSql(`create table mail_certificates (
      id serial primary key,
      vnode_id integer not null references vnodes(id) on delete cascade,
      names jsonb not null,
      issuer text not null,
      certificate_chain_pem text not null,
      private_key_pem text not null,
      not_after timestamptz not null,
      updated_at timestamptz not null default now())`);
    this.addSql("create index mail_certificates_vnode on mail_certificates (vnode_id)");
    this.addSql("alter table vnodes add column web_listen text null, add column web_directory text null");
  }

  override down(): void {
    this.addSql("drop table if exists mail_certificates");
    this.addSql("alter table vnodes drop column web_listen, drop column web_directory");
  }
}
