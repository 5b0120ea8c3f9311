// The CLI's DNS wiring, built at the entry point from controller.json and the environment: the
// PowerDNS provider when one is configured, the resolver the checks ask, the zone list fallback.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { readDnsConfig } from "../dns/dns-config.ts";
import type { DnsConfig } from "../dns/dns-config.ts";
import { createDnsLookup } from "../dns/dns-lookup.ts";
import type { DnsLookup } from "../dns/dns-lookup.ts";
import type { DnsProvider } from "../dns/dns-provider.ts";
import { createPowerDnsProvider } from "../dns/powerdns-provider.ts";
import { createZoneListProvider } from "../dns/zone-list-provider.ts";
import type { DnsZoneProvider } from "../dns/zone-provider.ts";
import type { HomePaths } from "../home/home-paths.ts";

export interface DnsSetup {
  config: DnsConfig;
  /** PowerDNS when configured; undefined = print records for the operator. */
  provider: DnsProvider | undefined;
  /** Zones for the mail-data rule and for printing: PowerDNS's, else <home>/dns-zones. */
  zones: DnsZoneProvider;
  lookup: DnsLookup;
}

export function dnsSetupFor(paths: HomePaths, env: Record<string, string | undefined>): DnsSetup {
  const config = readDnsConfig(paths.config, env);
  const provider = config.powerdns ? createPowerDnsProvider(config.powerdns) : undefined;
  const zonesFile = join(paths.root, "dns-zones");
  const zones =
    provider ??
    (existsSync(zonesFile) ? createZoneListProvider({ file: zonesFile }) : createZoneListProvider({ zones: [] }));
  return { config, provider, zones, lookup: createDnsLookup({ servers: config.resolver }) };
}

/** For the mail-data commands' "domain needs a zone" rule: PowerDNS when configured, else undefined. */
export function powerDnsZonesFor(
  paths: HomePaths,
  env: Record<string, string | undefined>,
): DnsZoneProvider | undefined {
  const config = readDnsConfig(paths.config, env);
  return config.powerdns ? createPowerDnsProvider(config.powerdns) : undefined;
}
