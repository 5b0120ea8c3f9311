import { Migration } from "@mikro-orm/migrations";

/**
 * Mail domains, mailboxes, aliases and per-domain variables. Plain PostgreSQL (runs on PGlite
 * and on a server). Mailboxes and aliases are removed by the services before their domain
 * (`on delete restrict`), so no cascade can silently take mail data with it; vconfs go with it.
 * Indexes serve the lookups the services make: by address/source (unique), by domain, by vnode,
 * and "which aliases point at this address" (GIN on the targets array).
 */
export class Migration0002MailData extends Migration {
  override name = "0002-mail-data";

  override up(): void {
    this.addSql(`create table mail_vhosts (
      id serial primary key,
      domain text not null unique check (domain = lower(domain)),
      vnode_id int not null references vnodes(id) on delete restrict,
      active boolean not null default true,
      default_quota bigint not null check (default_quota >= 0),
      max_mailboxes int not null default 0 check (max_mailboxes >= 0),
      max_aliases int not null default 0 check (max_aliases >= 0),
      max_quota bigint not null default 0 check (max_quota >= 0),
      overcommit boolean not null default false,
      dkim_selector text null,
      dkim_algorithm text null,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now())`);
    this.addSql(`create index mail_vhosts_vnode_id_index on mail_vhosts(vnode_id)`);
    this.addSql(`create table mail_vboxes (
      id serial primary key,
      domain_id int not null references mail_vhosts(id) on delete restrict,
      local_part text not null,
      address text not null unique check (address = lower(address)),
      password_hash text not null,
      quota bigint not null check (quota >= 0),
      usage bigint null,
      active boolean not null default true,
      maildir text not null,
      sieve_script text null,
      display_name text not null default '',
      password_changed_at timestamptz not null default now(),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (domain_id, local_part))`);
    this.addSql(`create table mail_valias (
      id serial primary key,
      domain_id int not null references mail_vhosts(id) on delete restrict,
      source text not null unique check (source = lower(source)),
      targets jsonb not null check (jsonb_typeof(targets) = 'array' and jsonb_array_length(targets) >= 1),
      active boolean not null default true,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now())`);
    this.addSql(`create index mail_valias_domain_id_index on mail_valias(domain_id)`);
    this.addSql(`create index mail_valias_targets_index on mail_valias using gin (targets jsonb_path_ops)`);
    this.addSql(`create table vconfs (
      id serial primary key,
      domain_id int not null references mail_vhosts(id) on delete cascade,
      name text not null,
      value text not null,
      secret boolean not null default false,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      unique (domain_id, name))`);
  }

  override down(): void {
    this.addSql("drop table if exists vconfs, mail_valias, mail_vboxes, mail_vhosts cascade");
  }
}
