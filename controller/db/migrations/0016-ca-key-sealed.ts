import { Migration } from "@mikro-orm/migrations";

/** The CA key in the database, sealed under each controller's key-encryption key (ca-seal.ts), and
 * the rollover link certificate of a rotation: with them a controller joins, or follows a CA
 * rotation made on another one, from the database alone. */
export class Migration0016CaKeySealed extends Migration {
  override name = "0016-ca-key-sealed";

  override up(): void {
    this.addSql("alter table certificate_authorities add column key_sealed text null, add column link_pem text null");
  }

  override down(): void {
    this.addSql("alter table certificate_authorities drop column key_sealed, drop column link_pem");
  }
}
