import { Migration } from "@mikro-orm/migrations";

/** DKIM keys of mail domains (private key in the controller DB, like mail_tls; the agent writes it
 * 0600 for Rspamd) and each domain's DNS policy (SPF, DMARC, MTA-STS, TLS-RPT) for mail:dns. */
export class Migration0004Dkim extends Migration {
  override name = "0004-dkim";

  override up(): void {
    this.addSql(`create table dkim_keys (
      id serial primary key,
      domain_id int not null references mail_vhosts(id) on delete cascade,
      selector text not null,
      algorithm text not null check (algorithm in ('rsa', 'ed25519')),
      bits int null,
      private_key_pem text not null,
      public_key text not null,
      state text not null check (state in ('pending', 'active', 'retired')),
      created_at timestamptz not null default now(),
      activated_at timestamptz null,
      retired_at timestamptz null,
      unique (domain_id, selector))`);
    this.addSql("create index dkim_keys_domain_state on dkim_keys (domain_id, state)");
    this.addSql(`create table mail_dns_policies (
      id serial primary key,
      domain_id int not null unique references mail_vhosts(id) on delete cascade,
      spf text null,
      dmarc_policy text null,
      dmarc_rua text null,
      mta_sts boolean not null default false,
      tls_rpt_rua text null,
      updated_at timestamptz not null default now())`);
  }

  override down(): void {
    this.addSql("drop table if exists mail_dns_policies");
    this.addSql("drop table if exists dkim_keys");
  }
}
