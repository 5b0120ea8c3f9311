import { Migration } from "@mikro-orm/migrations";

/** Per vnode, the ACME server its certificates come from and which hosted domains get one without
 * being named: every domain that asked for MTA-STS, or every domain (`--all-domains`). */
export class Migration0014AcmeVnodePolicy extends Migration {
  override name = "0014-acme-vnode-policy";

  override up(): void {
    this.addSql(`create table acme_vnode_policies (
      vnode_id integer primary key references vnodes(id) on delete cascade,
      server_url text not null,
      server_ca_pem text null,
      email text null,
      challenge text not null,
      all_domains boolean not null default false,
      mail_name boolean not null default false,
      updated_at timestamptz not null default now())`);
  }

  override down(): void {
    this.addSql("drop table if exists acme_vnode_policies");
  }
}
