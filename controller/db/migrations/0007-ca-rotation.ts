import { Migration } from "@mikro-orm/migrations";

/** CA rotation: the CAs the controller has used (active, previous during the overlap, retired),
 * the CA each join token pins, and which CAs each vnode's agent confirmed it trusts. */
export class Migration0007CaRotation extends Migration {
  override name = "0007-ca-rotation";

  override up(): void {
    this.addSql(`create table certificate_authorities (
      id serial primary key,
      pin text not null unique,
      serial text not null,
      state text not null,
      cert_pem text not null,
      not_before timestamptz not null,
      not_after timestamptz not null,
      created_at timestamptz not null default now(),
      retired_at timestamptz null)`);
    this.addSql("alter table join_tokens add column ca_pin text null");
    this.addSql(
      "alter table vnodes add column trusted_ca_pins jsonb null, add column trust_updated_at timestamptz null",
    );
  }

  override down(): void {
    this.addSql("drop table if exists certificate_authorities");
    this.addSql("alter table join_tokens drop column ca_pin");
    this.addSql("alter table vnodes drop column trusted_ca_pins, drop column trust_updated_at");
  }
}
