// The DNS provider the CLI uses until PowerDNS arrives: a fixed list of zones, given inline or
// read from a file (one zone per line, '#' starts a comment, a trailing dot is allowed, Unicode
// names are converted to A-labels). A domain is covered by the longest zone that is the domain
// itself or one of its parents, as a DNS server would answer for it.
import { readFile } from "node:fs/promises";
import { NetservaError, invalid } from "../../common/errors.ts";
import { parseDomain } from "../../common/validation/index.ts";
import type { DnsZoneProvider } from "./zone-provider.ts";

export type ZoneListOptions = { zones: readonly string[] } | { file: string };

/** A zone name as listed: a trailing root dot is allowed; single-label zones ("test") too. */
function parseZone(text: string, where: string): string {
  const name = text.endsWith(".") ? text.slice(0, -1) : text;
  // parseDomain needs two labels; a single-label zone is checked as if under a dummy parent.
  if (!name.includes(".")) return parseDomain(`${name}.invalid`, where).ascii.split(".")[0] ?? "";
  return parseDomain(name, where).ascii;
}

export function parseZoneList(text: string, source: string): Set<string> {
  const zones = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line !== "") zones.add(parseZone(line, `${source} line ${i + 1}`));
  });
  return zones;
}

function longestZone(zones: ReadonlySet<string>, domain: string): string | undefined {
  const labels = domain.toLowerCase().split(".");
  for (let i = 0; i < labels.length; i++) {
    const candidate = labels.slice(i).join(".");
    if (zones.has(candidate)) return candidate;
  }
  return undefined;
}

export function createZoneListProvider(options: ZoneListOptions): DnsZoneProvider {
  // Inline zones are checked at once; a file is read once, on first use, so one CLI invocation
  // sees the file as it was when it started.
  const readZones = (file: string): Promise<Set<string>> =>
    readFile(file, "utf8").then(
      (text) => parseZoneList(text, file),
      (error: unknown) => {
        throw new NetservaError("unavailable", `DNS zone list ${file}: ${(error as Error).message}`, { cause: error });
      },
    );
  let zones: Promise<Set<string>> | undefined =
    "zones" in options ? Promise.resolve(new Set(options.zones.map((z, i) => parseZone(z, `zones[${i}]`)))) : undefined;
  return {
    async findZone(domain) {
      if (typeof domain !== "string" || domain === "") throw invalid("domain", "no domain given to the DNS zone check");
      zones ??= "file" in options ? readZones(options.file) : Promise.resolve(new Set());
      return longestZone(await zones, domain);
    },
  };
}
