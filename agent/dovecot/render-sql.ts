// dovecot-sql.conf.ext: the sql passdb/userdb against the sysadm DB. Only active mailboxes of
// active domains log in or receive; quota comes from the row (NULL = no limit, Dovecot skips it).
import { confValue } from "./render-options.ts";

const ROW = "FROM vmails m JOIN vhosts d ON d.id = m.hid WHERE m.user = '%Lu' AND m.active = 1 AND d.active = 1";
const QUOTA = "CASE WHEN m.quota > 0 THEN '*:bytes=' || m.quota ELSE NULL END";

export function renderDovecotSql(dbPath: string): string {
  return [
    "# Rendered by netserva-mail; edits are overwritten.",
    "driver = sqlite",
    `connect = ${confValue(dbPath)}`,
    "default_pass_scheme = SHA512-CRYPT",
    `password_query = SELECT m.user AS user, m.pass AS password, m.home AS userdb_home, m.uid AS userdb_uid, m.gid AS userdb_gid, ${QUOTA} AS userdb_quota_rule ${ROW}`,
    `user_query = SELECT m.home AS home, m.uid AS uid, m.gid AS gid, ${QUOTA} AS quota_rule ${ROW}`,
    "iterate_query = SELECT m.user AS user FROM vmails m JOIN vhosts d ON d.id = m.hid WHERE m.active = 1 AND d.active = 1",
    "",
  ].join("\n");
}
