// The DNS-provider contract: what the controller needs from wherever a domain's DNS lives. Names
// are absolute, lower-case A-labels with a trailing dot ("example.com."); record contents are in
// zone-file presentation form (TXT as quoted strings, MX as "10 mail.example.com."), which is
// what PowerDNS's API and a BIND zone file both take.
import type { DnsZoneProvider } from "./zone-provider.ts";

export interface RRset {
  name: string;
  type: string;
  ttl: number;
  records: string[];
}

/** One change of a PATCH: REPLACE sets the whole RRset (name, type), DELETE removes it. */
export type RRsetChange =
  | { changetype: "REPLACE"; name: string; type: string; ttl: number; records: string[] }
  | { changetype: "DELETE"; name: string; type: string };

export interface DnsProvider extends DnsZoneProvider {
  /** "powerdns" | "print": shown to operators and in errors. */
  readonly kind: string;
  /** Zone names the provider serves (absolute, trailing dot). */
  listZones(): Promise<string[]>;
  /** The zone holding `domain` (longest match), without the trailing dot as the mail rules use
   * it; undefined = none. */
  findZone(domain: string): Promise<string | undefined>;
  /** RRsets of `zone` (with or without the trailing dot), optionally only at `name` / of `type`. */
  getRRsets(zone: string, filter?: { name?: string; type?: string }): Promise<RRset[]>;
  /** Applies all changes to one zone at once (PowerDNS applies a PATCH atomically). */
  replaceRRsets(zone: string, changes: readonly RRsetChange[]): Promise<void>;
}

/** "Example.COM" / "example.com." → "example.com." */
export function absolute(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") ? lower : `${lower}.`;
}

/** "example.com." → "example.com" */
export function relativeToRoot(name: string): string {
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

/** The longest zone of `zones` (absolute names) that is `name` itself or one of its parents. */
export function longestZoneOf(zones: readonly string[], name: string): string | undefined {
  const wanted = new Set(zones.map((z) => absolute(z)));
  const labels = relativeToRoot(absolute(name)).split(".");
  for (let i = 0; i < labels.length; i++) {
    const candidate = `${labels.slice(i).join(".")}.`;
    if (wanted.has(candidate)) return candidate;
  }
  return undefined;
}
