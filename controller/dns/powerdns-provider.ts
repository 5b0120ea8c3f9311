// PowerDNS through its HTTP API (v1): zones are listed, read and changed with PATCH (REPLACE /
// DELETE per RRset, applied by PowerDNS in one transaction). The zone list is read once per
// provider: one CLI invocation sees the zones as they were when it started.
import { NetservaError, invalid } from "../../common/errors.ts";
import type { DnsProvider, RRset, RRsetChange } from "./dns-provider.ts";
import { absolute, longestZoneOf, relativeToRoot } from "./dns-provider.ts";
import { powerDnsRequest } from "./powerdns-http.ts";
import type { PowerDnsEndpoint } from "./powerdns-http.ts";

export interface PowerDnsOptions {
  url: string;
  serverId?: string;
  apiKey: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface ApiZone {
  name: string;
  id: string;
}
interface ApiRRset {
  name: string;
  type: string;
  ttl: number;
  records: Array<{ content: string; disabled?: boolean }>;
}

function checkUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(
      "dns.url",
      `'${url.slice(0, 80)}' is not a URL; give the PowerDNS webserver, e.g. http://127.0.0.1:8081`,
    );
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:")
    throw invalid("dns.url", "must be http:// or https://");
  if (parsed.username || parsed.password || parsed.search)
    throw invalid(
      "dns.url",
      "must not carry credentials or a query; the API key goes in dns.apiKey / NETSERVA_PDNS_API_KEY",
    );
  return parsed.origin;
}

function asZones(value: unknown, where: string): ApiZone[] {
  if (!Array.isArray(value)) throw new NetservaError("unavailable", `${where}: zone list is not an array`);
  return value.filter(
    (z): z is ApiZone => typeof (z as ApiZone).name === "string" && typeof (z as ApiZone).id === "string",
  );
}

export function createPowerDnsProvider(options: PowerDnsOptions): DnsProvider {
  if (typeof options.apiKey !== "string" || options.apiKey === "")
    throw invalid("dns.apiKey", "no PowerDNS API key: set NETSERVA_PDNS_API_KEY or dns.apiKey in controller.json");
  const serverId = options.serverId ?? "localhost";
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(serverId))
    throw invalid("dns.serverId", "must be letters, digits, '.', '_' or '-' (PowerDNS's default is localhost)");
  const endpoint: PowerDnsEndpoint = {
    url: checkUrl(options.url),
    serverId,
    apiKey: options.apiKey,
    timeoutMs: options.timeoutMs ?? 10_000,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };
  const where = `PowerDNS at ${endpoint.url}`;
  let zones: Promise<ApiZone[]> | undefined;
  const loadZones = (): Promise<ApiZone[]> => {
    zones ??= powerDnsRequest(endpoint, "GET", "/zones").then((v) => asZones(v, where));
    // A failed listing is not remembered: the next call asks again.
    zones.catch(() => (zones = undefined));
    return zones;
  };
  const zoneId = async (zone: string): Promise<string> => {
    const name = absolute(zone);
    const found = (await loadZones()).find((z) => absolute(z.name) === name);
    if (!found) throw new NetservaError("not_found", `${where} has no zone ${name}`);
    return encodeURIComponent(found.id);
  };
  return {
    kind: "powerdns",
    async listZones() {
      return (await loadZones()).map((z) => absolute(z.name));
    },
    async findZone(domain) {
      if (typeof domain !== "string" || domain === "") throw invalid("domain", "no domain given to the DNS zone check");
      const zone = longestZoneOf(await this.listZones(), domain);
      return zone === undefined ? undefined : relativeToRoot(zone);
    },
    async getRRsets(zone, filter = {}) {
      const body = (await powerDnsRequest(endpoint, "GET", `/zones/${await zoneId(zone)}`)) as
        { rrsets?: ApiRRset[] } | undefined;
      const name = filter.name === undefined ? undefined : absolute(filter.name);
      return (body?.rrsets ?? [])
        .filter(
          (r) =>
            (name === undefined || absolute(r.name) === name) && (filter.type === undefined || r.type === filter.type),
        )
        .map((r): RRset => ({
          name: absolute(r.name),
          type: r.type,
          ttl: r.ttl,
          records: r.records.filter((x) => x.disabled !== true).map((x) => x.content),
        }));
    },
    async replaceRRsets(zone, changes: readonly RRsetChange[]) {
      if (changes.length === 0) return;
      const rrsets = changes.map((c) =>
        c.changetype === "DELETE"
          ? { name: absolute(c.name), type: c.type, changetype: "DELETE" }
          : {
              name: absolute(c.name),
              type: c.type,
              ttl: c.ttl,
              changetype: "REPLACE",
              records: c.records.map((content) => ({ content, disabled: false })),
            },
      );
      await powerDnsRequest(endpoint, "PATCH", `/zones/${await zoneId(zone)}`, { rrsets });
    },
  };
}
