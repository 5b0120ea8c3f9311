// What the mail-data rules ask of DNS: which zone holds a domain (a new mail domain needs one).
// PowerDNS answers from its zones, the zone list from <home>/dns-zones.

export interface DnsZoneProvider {
  /** The zone that holds `domain` (ASCII), or undefined when no zone covers it. */
  findZone(domain: string): Promise<string | undefined>;
}
