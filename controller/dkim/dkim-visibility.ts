// Rotation switches signing only once the new record can be read over DNS, from the server the
// operator configured (the authoritative one, e.g. PowerDNS itself), not from the provider's API.
import type { DnsLookup } from "../dns/dns-lookup.ts";
import { sameTxt } from "../dns/dns-lookup.ts";

export interface VisibleRecord {
  name: string;
  value: string;
}

export async function recordsVisible(lookup: DnsLookup, records: readonly VisibleRecord[]): Promise<boolean> {
  for (const r of records) {
    const found = await lookup.txt(r.name);
    if (!found.some((f) => sameTxt(f, r.value))) return false;
  }
  return true;
}

/** Polls every `intervalMs` until every record is visible or `timeoutMs` has passed. */
export async function waitVisible(
  lookup: DnsLookup,
  records: readonly VisibleRecord[],
  timeoutMs: number,
  intervalMs = 250,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await recordsVisible(lookup, records)) return true;
    if (Date.now() + intervalMs > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
