// Per-mailbox usage summarised for the health stream and metrics: counts over 80/90/100 %, the
// fullest mailboxes and a per-domain roll-up, both capped so label cardinality stays bounded.
import type { MailboxUsageRow } from "./mailbox-usage.ts";

export const TOP_MAILBOXES = 10;
export const TOP_DOMAINS = 50;

export interface DomainUsageRow {
  domain: string;
  mailboxes: number;
  usedBytes: number;
  maxRatio: number;
}

export interface QuotaSummaryRow {
  mailboxes: number;
  over80: number;
  over90: number;
  over100: number;
  usedBytes: number;
  top: MailboxUsageRow[];
  domains: DomainUsageRow[];
}

export const ratio = (m: MailboxUsageRow): number => (m.limitBytes > 0 ? m.usedBytes / m.limitBytes : 0);

export function summarizeQuota(rows: readonly MailboxUsageRow[]): QuotaSummaryRow {
  const byDomain = new Map<string, DomainUsageRow>();
  let over80 = 0,
    over90 = 0,
    over100 = 0,
    usedBytes = 0;
  for (const m of rows) {
    const r = ratio(m);
    if (r >= 0.8) over80 += 1;
    if (r >= 0.9) over90 += 1;
    if (r >= 1) over100 += 1;
    usedBytes += m.usedBytes;
    const domain = m.address.slice(m.address.lastIndexOf("@") + 1);
    const d = byDomain.get(domain) ?? { domain, mailboxes: 0, usedBytes: 0, maxRatio: 0 };
    d.mailboxes += 1;
    d.usedBytes += m.usedBytes;
    d.maxRatio = Math.max(d.maxRatio, r);
    byDomain.set(domain, d);
  }
  const top = [...rows].sort((a, b) => ratio(b) - ratio(a) || b.usedBytes - a.usedBytes).slice(0, TOP_MAILBOXES);
  const domains = [...byDomain.values()]
    .sort((a, b) => b.maxRatio - a.maxRatio || b.usedBytes - a.usedBytes)
    .slice(0, TOP_DOMAINS);
  return { mailboxes: rows.length, over80, over90, over100, usedBytes, top, domains };
}
