// Compares expected records with what DNS answers: OK, MISSING (nothing of ours there) or WRONG
// (something else there), with both sides shown. Also forward-confirmed reverse DNS: the PTR of
// each sending address names the HELO host, and that name resolves back to the address.
import { isIP } from "node:net";
import type { DnsLookup } from "./dns-lookup.ts";
import { sameTxt } from "./dns-lookup.ts";
import type { ExpectedRecord } from "./mail-records.ts";

export type CheckStatus = "OK" | "MISSING" | "WRONG";

export interface CheckRow {
  domain: string | null;
  check: string;
  name: string;
  type: string;
  status: CheckStatus;
  expected: string;
  found: string;
}

const sorted = (values: readonly string[]): string[] => [...values].map((v) => v.toLowerCase()).sort();
const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
const show = (values: readonly string[]): string => (values.length === 0 ? "-" : values.join(" | "));

function row(domain: string | null, r: ExpectedRecord, found: string[], status: CheckStatus): CheckRow {
  return { domain, check: r.check, name: r.name, type: r.type, status, expected: show(r.values), found: show(found) };
}

async function checkOne(
  lookup: DnsLookup,
  domain: string | null,
  r: ExpectedRecord,
  mailHost: string,
): Promise<CheckRow> {
  switch (r.type) {
    case "MX": {
      const found = (await lookup.mx(r.name)).map((m) => `${m.priority} ${m.exchange}`);
      return row(domain, r, found, found.length === 0 ? "MISSING" : sameSet(found, r.values) ? "OK" : "WRONG");
    }
    case "TXT": {
      const all = await lookup.txt(r.name);
      const prefix = r.prefix?.toLowerCase();
      const found = prefix === undefined ? all : all.filter((v) => v.toLowerCase().startsWith(prefix));
      const ok = found.length === r.values.length && r.values.every((v) => found.some((f) => sameTxt(f, v)));
      return row(domain, r, found, found.length === 0 ? "MISSING" : ok ? "OK" : "WRONG");
    }
    case "CNAME": {
      const found = await lookup.cname(r.name);
      if (found.length > 0) return row(domain, r, found, sameSet(found, r.values) ? "OK" : "WRONG");
      // An address record with the mail host's addresses serves clients just as well.
      const addresses = await lookup.addresses(r.name);
      if (addresses.length === 0) return row(domain, r, [], "MISSING");
      const hostAddresses = await lookup.addresses(mailHost);
      return row(
        domain,
        r,
        addresses.map((a) => `A ${a}`),
        sameSet(addresses, hostAddresses) ? "OK" : "WRONG",
      );
    }
    case "A":
    case "AAAA": {
      const family = r.type === "A" ? 4 : 6;
      const found = (await lookup.addresses(r.name)).filter((a) => isIP(a) === family);
      return row(domain, r, found, found.length === 0 ? "MISSING" : sameSet(found, r.values) ? "OK" : "WRONG");
    }
    case "PTR": {
      const found = await lookup.ptr(r.address ?? "");
      return row(
        domain,
        r,
        found,
        found.length === 0 ? "MISSING" : found.some((f) => r.values.includes(f)) ? "OK" : "WRONG",
      );
    }
  }
}

/** Forward-confirmed reverse DNS of one sending address against the HELO name. */
export async function checkFcrdns(lookup: DnsLookup, ip: string, heloName: string): Promise<CheckRow> {
  const helo = `${heloName.toLowerCase()}.`;
  const names = await lookup.ptr(ip);
  const base = { domain: null, check: "fcrdns", name: ip, type: "PTR+A", expected: `${ip} → ${helo} → ${ip}` };
  if (names.length === 0) return { ...base, status: "MISSING", found: `${ip} has no PTR` };
  const confirmed: string[] = [];
  const trail: string[] = [];
  for (const name of names) {
    const addresses = await lookup.addresses(name);
    trail.push(`${ip} → ${name} → ${addresses.length > 0 ? addresses.join(",") : "no address"}`);
    if (addresses.includes(ip)) confirmed.push(name);
  }
  return { ...base, status: confirmed.includes(helo) ? "OK" : "WRONG", found: trail.join(" | ") };
}

export async function checkRecords(
  lookup: DnsLookup,
  domain: string | null,
  records: readonly ExpectedRecord[],
  mailHost: string,
): Promise<CheckRow[]> {
  const rows: CheckRow[] = [];
  for (const r of records) rows.push(await checkOne(lookup, domain, r, mailHost));
  return rows;
}
