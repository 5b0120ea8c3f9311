import { Migration } from "@mikro-orm/migrations";

/** Fleet, PKI, audit and per-vnode service state. Plain PostgreSQL: runs on PGlite and on a server. */
export class Migration0001Foundation extends Migration {
  override name = "0001-foundation";

  override up(): void {
    this.addSql(`create table vnodes (
      id serial primary key,
      name text not null unique,
      address text not null,
      status text not null default 'pending',
      generation bigint not null default 0,
      applied_generation bigint not null default 0,
      agent_version text null,
      last_health_at timestamptz null,
      last_seen_at timestamptz null,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now())`);
    this.addSql(`create table certificates (
      id serial primary key,
      serial text not null unique,
      role text not null,
      identity text not null,
      vnode_id int null references vnodes(id) on delete set null,
      not_before timestamptz not null,
      not_after timestamptz not null,
      revoked_at timestamptz null,
      pem text not null,
      created_at timestamptz not null default now())`);
    this.addSql(`create index certificates_identity_index on certificates(identity)`);
    this.addSql(`create index certificates_vnode_id_index on certificates(vnode_id)`);
    this.addSql(`create table join_tokens (
      id serial primary key,
      token_id text not null unique,
      secret_hash text not null,
      vnode_id int not null references vnodes(id) on delete cascade,
      expires_at timestamptz not null,
      used_at timestamptz null,
      created_at timestamptz not null default now())`);
    this.addSql(`create index join_tokens_vnode_id_index on join_tokens(vnode_id)`);
    this.addSql(`create table command_log (
      id bigserial primary key,
      at timestamptz not null default now(),
      actor text not null,
      command text not null,
      vnode_name text null,
      request_id text not null,
      generation bigint null,
      result text not null,
      error text null,
      duration_ms double precision not null,
      args jsonb null)`);
    this.addSql(`create index command_log_at_index on command_log(at)`);
    this.addSql(`create index command_log_vnode_name_index on command_log(vnode_name)`);
    this.addSql(`create index command_log_request_id_index on command_log(request_id)`);
    this.addSql(`create table mail_services (
      id serial primary key,
      vnode_id int not null references vnodes(id) on delete cascade,
      service text not null,
      state text not null default 'unknown',
      version text null,
      detail text null,
      config jsonb null,
      updated_at timestamptz not null default now(),
      unique (vnode_id, service))`);
    this.addSql(`create index mail_services_vnode_id_index on mail_services(vnode_id)`);
  }

  override down(): void {
    this.addSql("drop table if exists mail_services, command_log, join_tokens, certificates, vnodes cascade");
  }
}
