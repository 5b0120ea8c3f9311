// Bulk export of one vnode's mail data in the import format, so `mail:export` output re-imports
// cleanly (on the same or another vnode, with `mail:import --vnode`): domains, then mailboxes
// (with their password hashes and Sieve scripts), then aliases. Domains and addresses are
// written as stored (IDNA A-labels), sizes in bytes, flags as true/false (JSON) or 1/0 (CSV).
import type { MailServices } from "../mail/mail-api.ts";
import { writeCsv } from "./csv.ts";
import type { ImportColumn } from "./rows.ts";
import { IMPORT_COLUMNS } from "./rows.ts";

export type ExportRow = Partial<Record<ImportColumn, string | number | boolean | string[]>> & {
  kind: "domain" | "mailbox" | "alias";
};

export interface ExportDocument {
  version: 1;
  vnode: string;
  exportedAt: string;
  rows: ExportRow[];
}

/** What the mailbox views do not show: the stored hash and the Sieve script, by ascii address. */
export type MailboxSecrets = (vnode: string) => Promise<Map<string, { passwordHash: string; sieve: string | null }>>;

export async function collectExport(
  services: MailServices,
  vnode: string,
  secrets: MailboxSecrets,
  now = new Date(),
): Promise<ExportDocument> {
  const [domains, mailboxes, aliases, stored] = await Promise.all([
    services.domains.list(vnode),
    services.mailboxes.list(vnode),
    services.aliases.list(vnode),
    secrets(vnode),
  ]);
  const rows: ExportRow[] = [];
  for (const d of domains) {
    rows.push({
      kind: "domain",
      domain: d.ascii,
      active: d.active,
      defaultQuota: d.defaultQuota,
      maxMailboxes: d.maxMailboxes,
      maxAliases: d.maxAliases,
      maxQuota: d.maxQuota,
      overcommit: d.overcommit,
    });
  }
  for (const m of mailboxes) {
    const secret = stored.get(m.ascii);
    const row: ExportRow = { kind: "mailbox", address: m.ascii, active: m.active, quota: m.quota };
    if (m.name) row.name = m.name;
    if (secret?.passwordHash) row.passwordHash = secret.passwordHash;
    if (secret?.sieve) row.sieve = secret.sieve;
    rows.push(row);
  }
  for (const a of aliases) rows.push({ kind: "alias", source: a.source, targets: a.targets, active: a.active });
  return { version: 1, vnode: domains[0]?.vnode ?? vnode, exportedAt: now.toISOString(), rows };
}

export function exportJson(doc: ExportDocument): string {
  return JSON.stringify(doc, null, 2) + "\n";
}

export function exportCsv(doc: ExportDocument): string {
  const cell = (value: ExportRow[ImportColumn]): string => {
    if (value === undefined) return "";
    if (typeof value === "boolean") return value ? "1" : "0";
    if (Array.isArray(value)) return value.join(",");
    return String(value);
  };
  return writeCsv(
    IMPORT_COLUMNS,
    doc.rows.map((row) => IMPORT_COLUMNS.map((column) => (column === "vnode" ? doc.vnode : cell(row[column])))),
  );
}
