// Puts expected records into the provider, one PATCH per zone. Each record goes to the zone that
// holds its name (the domain's zone, the mail host's zone, a reverse zone); a name no zone of the
// provider holds is reported back, not an error: PTRs often live at the address's owner. At a
// shared name (the apex TXT) only our own values (e.g. the v=spf1 one) are replaced.
import { NetservaError } from "../../common/errors.ts";
import type { DnsProvider, RRsetChange } from "./dns-provider.ts";
import { relativeToRoot } from "./dns-provider.ts";
import type { ExpectedRecord } from "./mail-records.ts";
import { txtPresentation, txtValue } from "./txt-record.ts";

export interface PublishOutcome {
  published: Array<{ record: ExpectedRecord; zone: string }>;
  skipped: Array<{ record: ExpectedRecord; reason: string }>;
}

export function contentOf(record: ExpectedRecord): string[] {
  return record.type === "TXT" ? record.values.map(txtPresentation) : [...record.values];
}

export function changeOf(record: ExpectedRecord, ttl: number, keep: readonly string[] = []): RRsetChange {
  return { changetype: "REPLACE", name: record.name, type: record.type, ttl, records: [...keep, ...contentOf(record)] };
}

/** Existing contents at a shared name that are not ours (other TXT values next to SPF). */
async function othersAt(provider: DnsProvider, zone: string, record: ExpectedRecord): Promise<string[]> {
  if (record.prefix === undefined) return [];
  const prefix = record.prefix.toLowerCase();
  const existing = await provider.getRRsets(zone, { name: record.name, type: record.type });
  return existing.flatMap((r) => r.records).filter((c) => !txtValue(c).toLowerCase().startsWith(prefix));
}

export async function publishRecords(
  provider: DnsProvider,
  records: readonly ExpectedRecord[],
  ttl: number,
): Promise<PublishOutcome> {
  const outcome: PublishOutcome = { published: [], skipped: [] };
  const byZone = new Map<string, ExpectedRecord[]>();
  for (const record of records) {
    const zone = await provider.findZone(relativeToRoot(record.name));
    if (zone === undefined)
      outcome.skipped.push({ record, reason: `no zone at ${provider.kind} holds ${record.name}` });
    else byZone.set(zone, [...(byZone.get(zone) ?? []), record]);
  }
  for (const [zone, list] of byZone) {
    // Records of one name and type are merged into one RRset (e.g. A of two sending addresses).
    const merged = new Map<string, ExpectedRecord>();
    for (const r of list) {
      const key = `${r.name} ${r.type}`;
      const prior = merged.get(key);
      merged.set(key, prior ? { ...prior, values: [...new Set([...prior.values, ...r.values])] } : r);
    }
    const changes: RRsetChange[] = [];
    for (const r of merged.values()) changes.push(changeOf(r, ttl, await othersAt(provider, zone, r)));
    try {
      await provider.replaceRRsets(zone, changes);
    } catch (error) {
      const e = NetservaError.from(error);
      throw new NetservaError(
        e.code,
        `${e.message} (zone ${zone}; records published before it: ${outcome.published.length})`,
        { ...(e.field ? { field: e.field } : {}), cause: e },
      );
    }
    for (const record of list) outcome.published.push({ record, zone });
  }
  return outcome;
}

/** Removes whole RRsets (e.g. the DKIM records of retired selectors). */
export async function deleteRecords(
  provider: DnsProvider,
  records: ReadonlyArray<Pick<ExpectedRecord, "name" | "type">>,
): Promise<number> {
  let removed = 0;
  for (const record of records) {
    const zone = await provider.findZone(relativeToRoot(record.name));
    if (zone === undefined) continue;
    await provider.replaceRRsets(zone, [{ changetype: "DELETE", name: record.name, type: record.type }]);
    removed++;
  }
  return removed;
}
