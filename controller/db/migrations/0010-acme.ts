import { Migration } from "@mikro-orm/migrations";

/** ACME: one account (key and URL) per ACME server, and per vnode the certificate it asked an ACME
 * server for (names, schedule, failures, and a claim so one controller process runs each order). */
export class Migration0010Acme extends Migration {
  override name = "0010-acme";

  override up(): void {
    this.addSql(`create table acme_accounts (
      id serial primary key,
      server_url text not null unique,
      email text null,
      account_key_pem text not null,
      account_url text null,
      created_at timestamptz not null default now())`);
    this.addSql(`create table acme_certificates (
      id serial primary key,
      vnode_id integer not null references vnodes(id) on delete cascade,
      purpose text not null,
      server_url text not null,
      server_ca_pem text null,
      email text null,
      challenge text not null,
      names jsonb not null,
      state text not null,
      issuer text null,
      not_before timestamptz null,
      not_after timestamptz null,
      next_attempt_at timestamptz not null,
      failures integer not null default 0,
      last_error text null,
      last_attempt_at timestamptz null,
      claimed_by text null,
      claimed_until timestamptz null,
      updated_at timestamptz not null default now(),
      unique (vnode_id, purpose))`);
    this.addSql("create index acme_certificates_next on acme_certificates (next_attempt_at)");
  }

  override down(): void {
    this.addSql("drop table if exists acme_certificates");
    this.addSql("drop table if exists acme_accounts");
  }
}
