import { Migration } from "@mikro-orm/migrations";

/** Which CA key-encryption keys each running controller holds (their ids, never the keys;
 * ca-seal.ts kekId), so `ca rekey` can refuse while a live controller lacks the new one. Null: a
 * controller without a KEK, or of an earlier release. */
export class Migration0018ControllerKekIds extends Migration {
  override name = "0018-controller-kek-ids";

  override up(): void {
    this.addSql("alter table controllers add column kek_ids text null");
  }

  override down(): void {
    this.addSql("alter table controllers drop column kek_ids");
  }
}
