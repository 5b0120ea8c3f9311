// The `print` provider, for operators whose DNS is elsewhere: changes are written out as a BIND
// zone-file fragment (absolute names, so it fits any zone file) instead of being applied. Zones
// come from another provider (the zone list in <home>/dns-zones); nothing is ever read back, so
// getRRsets answers empty and the DNS check has to ask DNS itself.
import type { DnsZoneProvider } from "./zone-provider.ts";
import type { DnsProvider, RRset, RRsetChange } from "./dns-provider.ts";
import { absolute } from "./dns-provider.ts";

export interface PrintProviderOptions {
  write(text: string): void;
  zones: DnsZoneProvider;
}

/** One line per record: `name TTL IN TYPE content`; a DELETE becomes a comment to act on. */
export function bindFragment(changes: readonly RRsetChange[]): string {
  const lines: string[] = [];
  for (const c of changes) {
    if (c.changetype === "DELETE") lines.push(`; remove: ${absolute(c.name)} IN ${c.type}`);
    else for (const content of c.records) lines.push(`${absolute(c.name)}\t${c.ttl}\tIN\t${c.type}\t${content}`);
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

export function rrsetsAsFragment(rrsets: readonly RRset[]): string {
  return bindFragment(rrsets.map((r) => ({ changetype: "REPLACE", ...r })));
}

export function createPrintProvider(options: PrintProviderOptions): DnsProvider {
  return {
    kind: "print",
    async listZones() {
      return [];
    },
    findZone: (domain) => options.zones.findZone(domain),
    async getRRsets() {
      return [];
    },
    async replaceRRsets(zone, changes) {
      if (changes.length === 0) return;
      options.write(`; zone ${absolute(zone)}\n${bindFragment(changes)}`);
    },
  };
}
