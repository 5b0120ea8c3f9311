// Where the controller's DNS lives, from controller.json's "dns" object, each field overridable
// by an environment variable (env wins): url ← NETSERVA_PDNS_URL, apiKey ← NETSERVA_PDNS_API_KEY,
// serverId ← NETSERVA_PDNS_SERVER_ID, resolver ← NETSERVA_DNS_RESOLVER (comma-separated ip[:port]).
// The caller passes the environment in: only entry points read process.env. The API key is kept
// in this object and handed to the provider; it is never printed (see describeDnsConfig).
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { invalid } from "../../common/errors.ts";

export interface DnsConfig {
  /** PowerDNS webserver; absent = no provider, records are printed (the print provider). */
  powerdns?: { url: string; serverId: string; apiKey: string };
  /** Servers the DNS check and the rotation's visibility wait ask (ip:port); empty = the system's. */
  resolver: string[];
  /** TTL of records we publish, seconds. */
  ttl: number;
}

interface FileDns {
  url?: unknown;
  serverId?: unknown;
  apiKey?: unknown;
  resolver?: unknown;
  ttl?: unknown;
}

function fileDns(configPath: string): FileDns {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(configPath, "utf8"));
  } catch {
    return {}; // an uninitialised home is reported by the command that needs it
  }
  const dns = (parsed as { dns?: unknown }).dns;
  if (dns === undefined) return {};
  if (typeof dns !== "object" || dns === null || Array.isArray(dns))
    throw invalid("dns", `${configPath}: "dns" must be an object`);
  return dns as FileDns;
}

function text(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw invalid(field, "must be a string");
  return value;
}

/** "127.0.0.1:5300" / "::1" / "[::1]:53" → the form node:dns setServers takes. */
export function parseResolver(value: string, field = "dns.resolver"): string {
  const v = value.trim();
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(v);
  const plain = /^([0-9.]+)(?::(\d{1,5}))?$/.exec(v);
  const host = bracketed?.[1] ?? plain?.[1] ?? (isIP(v) === 6 ? v : undefined);
  const port = bracketed?.[2] ?? plain?.[2];
  if (host === undefined || isIP(host) === 0)
    throw invalid(field, `'${v.slice(0, 60)}' is not an IP address with an optional :port`);
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535))
    throw invalid(field, `port ${port} is out of range`);
  return port === undefined ? host : isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export function readDnsConfig(configPath: string, env: Record<string, string | undefined>): DnsConfig {
  const file = fileDns(configPath);
  const url = text(env["NETSERVA_PDNS_URL"], "NETSERVA_PDNS_URL") ?? text(file.url, "dns.url");
  const apiKey = text(env["NETSERVA_PDNS_API_KEY"], "NETSERVA_PDNS_API_KEY") ?? text(file.apiKey, "dns.apiKey");
  const serverId =
    text(env["NETSERVA_PDNS_SERVER_ID"], "NETSERVA_PDNS_SERVER_ID") ??
    text(file.serverId, "dns.serverId") ??
    "localhost";
  const resolverText = text(env["NETSERVA_DNS_RESOLVER"], "NETSERVA_DNS_RESOLVER");
  const resolverList =
    resolverText !== undefined
      ? resolverText.split(",")
      : file.resolver === undefined
        ? []
        : Array.isArray(file.resolver)
          ? file.resolver
          : [file.resolver];
  const resolver = resolverList.map((r, i) => parseResolver(String(r), `dns.resolver[${i}]`));
  const ttl = file.ttl === undefined ? 3600 : Number(file.ttl);
  if (!Number.isInteger(ttl) || ttl < 60 || ttl > 86400)
    throw invalid("dns.ttl", "must be a whole number of seconds, 60..86400");
  if (url !== undefined && apiKey === undefined)
    throw invalid(
      "dns.apiKey",
      "PowerDNS URL is set but no API key: set NETSERVA_PDNS_API_KEY or dns.apiKey in controller.json",
    );
  return {
    ...(url !== undefined && apiKey !== undefined ? { powerdns: { url, serverId, apiKey } } : {}),
    resolver,
    ttl,
  };
}

/** For people: which provider and resolver are in use, without the key. */
export function describeDnsConfig(config: DnsConfig): string {
  const provider = config.powerdns
    ? `powerdns ${config.powerdns.url} (server ${config.powerdns.serverId})`
    : "print (no PowerDNS configured)";
  return `${provider}; resolver ${config.resolver.length > 0 ? config.resolver.join(",") : "system"}`;
}
