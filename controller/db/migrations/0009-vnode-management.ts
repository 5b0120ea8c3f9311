import { Migration } from "@mikro-orm/migrations";

/** Whether a vnode's agent manages its mail or keeps its hands off (a vnode with mail
 * configuration we did not write), as its agent last reported, and why. */
export class Migration0009VnodeManagement extends Migration {
  override name = "0009-vnode-management";

  override up(): void {
    this.addSql("alter table vnodes add column management text null, add column management_reason text null");
  }

  override down(): void {
    this.addSql("alter table vnodes drop column management, drop column management_reason");
  }
}
