// Reading records over DNS itself (not through a provider's API): what the world sees. A fresh
// node:dns Resolver per question, so no answer cached by c-ares hides a change just published.
// "No such name", "no record of that type" and REFUSED (an authoritative server that does not
// serve the name) are empty answers; a server that does not answer or fails (SERVFAIL) is an
// error (unavailable), so a check never reports MISSING for a DNS outage.
import { Resolver } from "node:dns/promises";
import { NetservaError } from "../../common/errors.ts";
import { txtValue } from "./txt-record.ts";

export interface DnsLookup {
  /** Where the questions go, for messages. */
  readonly servers: string;
  txt(name: string): Promise<string[]>;
  mx(name: string): Promise<Array<{ priority: number; exchange: string }>>;
  /** A and AAAA together. */
  addresses(name: string): Promise<string[]>;
  cname(name: string): Promise<string[]>;
  ptr(ip: string): Promise<string[]>;
}

export interface DnsLookupOptions {
  /** ip[:port] of the servers to ask; empty = the system's resolvers. */
  servers: readonly string[];
  timeoutMs?: number;
}

const EMPTY = new Set(["ENOTFOUND", "ENODATA", "NOTFOUND", "NODATA", "EREFUSED", "REFUSED"]);

const bare = (name: string): string => (name.endsWith(".") ? name.slice(0, -1) : name);
const dotted = (name: string): string => `${bare(name).toLowerCase()}.`;

export function createDnsLookup(options: DnsLookupOptions): DnsLookup {
  const servers = options.servers.length > 0 ? options.servers.join(",") : "the system resolver";
  const resolver = (): Resolver => {
    const r = new Resolver({ timeout: options.timeoutMs ?? 2000, tries: 2 });
    if (options.servers.length > 0) r.setServers([...options.servers]);
    return r;
  };
  async function ask<T>(what: string, query: (r: Resolver) => Promise<T[]>): Promise<T[]> {
    try {
      return await query(resolver());
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code === "string" && EMPTY.has(code)) return [];
      throw new NetservaError(
        "unavailable",
        `DNS server ${servers} did not answer ${what} (${typeof code === "string" ? code : (error as Error).message})`,
      );
    }
  }
  return {
    servers,
    async txt(name) {
      const chunks = await ask(`TXT ${dotted(name)}`, (r) => r.resolveTxt(bare(name)));
      return chunks.map((strings) => strings.join(""));
    },
    async mx(name) {
      const rows = await ask(`MX ${dotted(name)}`, (r) => r.resolveMx(bare(name)));
      return rows.map((m) => ({ priority: m.priority, exchange: dotted(m.exchange) }));
    },
    async addresses(name) {
      const v4 = await ask(`A ${dotted(name)}`, (r) => r.resolve4(bare(name)));
      const v6 = await ask(`AAAA ${dotted(name)}`, (r) => r.resolve6(bare(name)));
      return [...v4, ...v6];
    },
    async cname(name) {
      return (await ask(`CNAME ${dotted(name)}`, (r) => r.resolveCname(bare(name)))).map(dotted);
    },
    async ptr(ip) {
      return (await ask(`PTR of ${ip}`, (r) => r.reverse(ip))).map(dotted);
    },
  };
}

/** Compares TXT values the way a reader would: whitespace around ';' and '=' does not matter. */
export function sameTxt(a: string, b: string): boolean {
  const norm = (s: string): string =>
    txtValue(s)
      .replace(/\s*;\s*/g, ";")
      .replace(/\s*=\s*/g, "=")
      .replace(/;$/, "")
      .trim();
  return norm(a) === norm(b);
}
