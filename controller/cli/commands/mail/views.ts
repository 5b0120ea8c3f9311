// Listings of the mail views. JSON and CSV carry the view objects of mail-api.ts unchanged (the
// stable, documented field names; sizes in bytes); the table is for people (sizes as 2G, lists
// joined), with the same column names.
import { formatQuota } from "../../../../common/validation/quota.ts";
import type { AliasView, DomainView, MailboxView, VConfView } from "../../../mail/mail-api.ts";
import { formatRows } from "../../format.ts";
import type { OutputFormat } from "../../format.ts";

function size(bytes: number | null): string {
  if (bytes === null) return "-";
  if (bytes === 0) return "unlimited";
  try {
    return formatQuota(bytes);
  } catch {
    return String(bytes);
  }
}

function flag(value: boolean): string {
  return value ? "yes" : "no";
}

const mailboxColumns = [
  "address",
  "ascii",
  "vnode",
  "name",
  "quota",
  "usage",
  "active",
  "maildir",
  "hasSieve",
  "aliases",
  "passwordScheme",
  "weakPassword",
  "passwordChangedAt",
  "createdAt",
  "updatedAt",
] as const;
const domainColumns = [
  "domain",
  "ascii",
  "vnode",
  "active",
  "defaultQuota",
  "maxMailboxes",
  "maxAliases",
  "maxQuota",
  "overcommit",
  "mailboxes",
  "aliases",
  "dkimSelector",
  "dkimAlgorithm",
  "createdAt",
  "updatedAt",
] as const;
const aliasColumns = ["source", "targets", "vnode", "active", "createdAt", "updatedAt"] as const;
const vconfColumns = ["domain", "name", "value", "secret"] as const;

function mailboxRow(m: MailboxView): Record<string, string> {
  return {
    address: m.address,
    name: m.name || "-",
    quota: size(m.quota),
    usage: size(m.usage),
    active: flag(m.active),
    aliases: m.aliases.join(",") || "-",
    password: m.weakPassword ? `weak (${m.passwordScheme})` : "ok",
  };
}

export function mailboxTable(rows: MailboxView[], format: OutputFormat): string {
  if (format === "json") return JSON.stringify(rows, null, 2) + "\n";
  if (format === "csv")
    return formatRows(
      rows.map((m) => ({ ...m, aliases: m.aliases.join(",") })),
      [...mailboxColumns],
      "csv",
    );
  return formatRows(
    rows.map(mailboxRow),
    ["address", "name", "quota", "usage", "active", "aliases", "password"],
    "table",
  );
}

/** One mailbox: key/value lines for people, the view object for scripts. */
export function mailboxDetail(m: MailboxView, format: OutputFormat): string {
  if (format === "json") return JSON.stringify(m, null, 2) + "\n";
  if (format === "csv") return mailboxTable([m], "csv");
  const lines: Array<[string, string]> = [
    ["address", m.address === m.ascii ? m.address : `${m.address} (${m.ascii})`],
    ["vnode", m.vnode],
    ["name", m.name || "-"],
    ["quota", size(m.quota)],
    [
      "usage",
      m.usage === null
        ? "not reported yet"
        : `${size(m.usage)}${m.quota > 0 ? ` (${((m.usage / m.quota) * 100).toFixed(1)}%)` : ""}`,
    ],
    ["active", flag(m.active)],
    ["maildir", m.maildir],
    ["sieve", m.hasSieve ? "yes" : "no"],
    ["aliases", m.aliases.join(", ") || "-"],
    [
      "password",
      m.weakPassword
        ? `${m.passwordScheme}: weak (kept from the adopted vnode); set a new one: chvmail ${m.vnode} ${m.ascii} --password-stdin`
        : m.passwordScheme || "-",
    ],
    ["password changed", m.passwordChangedAt],
    ["created", m.createdAt],
    ["updated", m.updatedAt],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n") + "\n";
}

export function domainTable(rows: DomainView[], format: OutputFormat): string {
  if (format !== "table") return formatRows(rows, [...domainColumns], format);
  const people = rows.map((d) => ({
    domain: d.domain === d.ascii ? d.domain : `${d.domain} (${d.ascii})`,
    active: flag(d.active),
    mailboxes: d.maxMailboxes ? `${d.mailboxes}/${d.maxMailboxes}` : String(d.mailboxes),
    aliases: d.maxAliases ? `${d.aliases}/${d.maxAliases}` : String(d.aliases),
    defaultQuota: size(d.defaultQuota),
    maxQuota: size(d.maxQuota),
    overcommit: flag(d.overcommit),
    dkim: d.dkimSelector ? `${d.dkimSelector} (${d.dkimAlgorithm ?? "?"})` : "-",
  }));
  return formatRows(
    people,
    ["domain", "active", "mailboxes", "aliases", "defaultQuota", "maxQuota", "overcommit", "dkim"],
    "table",
  );
}

export function aliasTable(rows: AliasView[], format: OutputFormat): string {
  const flat = rows.map((a) => ({ ...a, targets: a.targets.join(",") }));
  if (format === "json") return JSON.stringify(rows, null, 2) + "\n";
  if (format === "csv") return formatRows(flat, [...aliasColumns], "csv");
  return formatRows(
    flat.map((a) => ({ source: a.source, targets: a.targets, active: flag(a.active) })),
    ["source", "targets", "active"],
    "table",
  );
}

export function vconfTable(rows: VConfView[], format: OutputFormat): string {
  if (format !== "table") return formatRows(rows, [...vconfColumns], format);
  return formatRows(
    rows.map((v) => ({ ...v, secret: flag(v.secret) })),
    [...vconfColumns],
    "table",
  );
}
