// DNS-01 through the controller's DNS provider: `_acme-challenge.<name>` TXT records in the zone
// the provider serves for the name, one PATCH per zone (PowerDNS applies it atomically), removed
// once the order is done. A name in a zone the provider does not serve is refused before any order.
import { NetservaError } from "../../common/errors.ts";
import { absolute } from "../dns/dns-provider.ts";
import type { DnsProvider, RRsetChange } from "../dns/dns-provider.ts";
import type { ChallengeAnswer, ChallengeSolver } from "./challenge-solver.ts";

const TTL = 60;

export function createDns01Solver(provider: DnsProvider | undefined): ChallengeSolver {
  const zoneOf = async (name: string): Promise<string> => {
    if (!provider)
      throw new NetservaError(
        "failed_precondition",
        "DNS-01 needs a DNS provider: configure PowerDNS (dns.url and dns.apiKey in controller.json, or NETSERVA_PDNS_URL / NETSERVA_PDNS_API_KEY)",
      );
    const zone = await provider.findZone(name);
    if (zone === undefined)
      throw new NetservaError(
        "failed_precondition",
        `${name}: no zone for it in ${provider.kind}, so the controller cannot answer a DNS-01 challenge; add the zone or use --challenge http-01`,
      );
    return zone;
  };
  const byZone = async (answers: readonly ChallengeAnswer[]): Promise<Map<string, Map<string, string[]>>> => {
    const zones = new Map<string, Map<string, string[]>>();
    for (const a of answers) {
      const zone = await zoneOf(a.name);
      const records = zones.get(zone) ?? new Map<string, string[]>();
      const owner = absolute(`_acme-challenge.${a.name.replace(/^\*\./, "")}`);
      records.set(owner, [...(records.get(owner) ?? []), `"${a.value}"`]);
      zones.set(zone, records);
    }
    return zones;
  };
  return {
    type: "dns-01",
    async check(names) {
      for (const name of names) await zoneOf(name);
    },
    async present(answers) {
      for (const [zone, records] of await byZone(answers)) {
        const changes: RRsetChange[] = [...records].map(([name, values]) => ({
          changetype: "REPLACE",
          name,
          type: "TXT",
          ttl: TTL,
          records: values,
        }));
        await provider?.replaceRRsets(zone, changes);
      }
    },
    async cleanup(answers) {
      for (const [zone, records] of await byZone(answers)) {
        const changes: RRsetChange[] = [...records.keys()].map((name) => ({ changetype: "DELETE", name, type: "TXT" }));
        await provider?.replaceRRsets(zone, changes);
      }
    },
  };
}
