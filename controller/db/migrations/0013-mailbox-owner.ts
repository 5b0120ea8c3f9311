import { Migration } from "@mikro-orm/migrations";

/** An adopted mailbox's own home, uid and gid (NetServa's per-domain owners, homes under /home on
 * older vnodes), used as they are; null = the agent's derived values, as for every mailbox so far. */
export class Migration0013MailboxOwner extends Migration {
  override name = "0013-mailbox-owner";

  override up(): void {
    this.addSql(
      "alter table mail_vboxes add column home text null, add column uid integer null, add column gid integer null",
    );
  }

  override down(): void {
    this.addSql("alter table mail_vboxes drop column home, drop column uid, drop column gid");
  }
}
