// The sqlite map definitions Postfix reads the sysadm DB through. Only active rows of active
// domains answer; Postfix substitutes %s/%d itself and escapes quotes in the key.
export const MAP_NAMES = [
  "virtual-domains",
  "virtual-mailboxes",
  "virtual-aliases",
  "virtual-mailbox-self",
  "sender-login",
] as const;

export type MapName = (typeof MAP_NAMES)[number];

const QUERIES: Record<MapName, string> = {
  "virtual-domains": "SELECT 1 FROM vhosts WHERE domain = '%s' AND active = 1",
  "virtual-mailboxes":
    "SELECT 1 FROM vmails m JOIN vhosts d ON d.id = m.hid WHERE m.user = '%s' AND m.active = 1 AND d.active = 1",
  // Full addresses and "@domain" catch-alls; target is already a comma-separated list.
  "virtual-aliases":
    "SELECT a.target FROM valias a JOIN vhosts d ON d.id = a.hid WHERE a.source = '%s' AND a.active = 1 AND d.active = 1",
  "virtual-mailbox-self":
    "SELECT m.user FROM vmails m JOIN vhosts d ON d.id = m.hid WHERE m.user = '%s' AND m.active = 1 AND d.active = 1",
  // Who may use a MAIL FROM: the mailbox itself, or the targets of a (non catch-all) alias.
  "sender-login":
    "SELECT user FROM vmails WHERE user = '%s' AND active = 1 UNION SELECT target FROM valias WHERE source = '%s' AND source NOT LIKE '@%%' AND active = 1",
};

/** A key that makes each map run its query during validation (`postmap -q`). */
export const PROBE_KEY: Record<MapName, string> = {
  "virtual-domains": "probe.invalid",
  "virtual-mailboxes": "probe@probe.invalid",
  "virtual-aliases": "probe@probe.invalid",
  "virtual-mailbox-self": "probe@probe.invalid",
  "sender-login": "probe@probe.invalid",
};

export function renderMap(name: MapName, dbPath: string): string {
  if (/[\r\n]/.test(dbPath)) throw new Error("unsafe lookup DB path");
  return `# Rendered by netserva-mail; edits are overwritten.\ndbpath = ${dbPath}\nquery = ${QUERIES[name]}\n`;
}
