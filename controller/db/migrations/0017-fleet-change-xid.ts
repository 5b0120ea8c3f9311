import { Migration } from "@mikro-orm/migrations";

/**
 * Which transaction last changed what the fleet's links depend on (a vnode's address, status or
 * generation; a certificate's revocation), set by triggers so no writer can forget it. The fleet's
 * refresh reads only the rows changed since its last read (fleet/fleet-changes.ts: rows whose
 * transaction is at or past the oldest one still running at that read), instead of every
 * enrolled vnode and every revoked serial every 2 s.
 */
export class Migration0017FleetChangeXid extends Migration {
  override name = "0017-fleet-change-xid";

  override up(): void {
    this.addSql("alter table vnodes add column fleet_xid xid8 null");
    this.addSql("alter table certificates add column fleet_xid xid8 null");
    this.addSql(`create function netserva_fleet_xid() returns trigger language plpgsql as $$
      begin
        new.fleet_xid := pg_current_xact_id();
        return new;
      end $$`);
    this.addSql(`create trigger vnodes_fleet_xid_insert before insert on vnodes
      for each row execute function netserva_fleet_xid()`);
    this.addSql(`create trigger vnodes_fleet_xid_update before update of name, address, status, generation on vnodes
      for each row when (old.name is distinct from new.name or old.address is distinct from new.address
        or old.status is distinct from new.status or old.generation is distinct from new.generation)
      execute function netserva_fleet_xid()`);
    this.addSql(`create trigger certificates_fleet_xid_insert before insert on certificates
      for each row execute function netserva_fleet_xid()`);
    this
      .addSql(`create trigger certificates_fleet_xid_update before update of revoked_at, not_after, vnode_id on certificates
      for each row when (old.revoked_at is distinct from new.revoked_at or old.not_after is distinct from new.not_after
        or old.vnode_id is distinct from new.vnode_id)
      execute function netserva_fleet_xid()`);
    this.addSql("create index vnodes_fleet_xid_index on vnodes(fleet_xid)");
    this.addSql("create index certificates_fleet_xid_index on certificates(fleet_xid)");
  }

  override down(): void {
    this.addSql("drop trigger vnodes_fleet_xid_insert on vnodes");
    this.addSql("drop trigger vnodes_fleet_xid_update on vnodes");
    this.addSql("drop trigger certificates_fleet_xid_insert on certificates");
    this.addSql("drop trigger certificates_fleet_xid_update on certificates");
    this.addSql("drop function netserva_fleet_xid()");
    this.addSql("alter table vnodes drop column fleet_xid");
    this.addSql("alter table certificates drop column fleet_xid");
  }
}
