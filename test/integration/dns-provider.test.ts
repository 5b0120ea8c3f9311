// The DNS providers against a real PowerDNS (gsqlite3, API on loopback): zones, RRsets replaced
// and deleted through the API and read back over DNS itself (node:dns and dig), long TXT split
// into 255-byte strings, SPF merged beside other apex TXT; and every failure mode of the API
// (wrong key, down, 4xx, 5xx, no answer) as a clear error that changes nothing and never shows
// the key. The print provider's BIND fragment is checked too.
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NetservaError } from "../../common/errors.ts";
import { createDnsLookup } from "../../controller/dns/dns-lookup.ts";
import { createPowerDnsProvider } from "../../controller/dns/powerdns-provider.ts";
import { bindFragment, createPrintProvider } from "../../controller/dns/print-provider.ts";
import { publishRecords } from "../../controller/dns/publish-records.ts";
import { splitTxt, txtPresentation, txtValue } from "../../controller/dns/txt-record.ts";
import { createZoneListProvider } from "../../controller/dns/zone-list-provider.ts";
import { freePort } from "../helpers/controller-harness.ts";
import { pdnsAvailable, startPdns } from "../helpers/pdns.ts";
import type { Pdns } from "../helpers/pdns.ts";

const exec = promisify(execFile);
let pdns: Pdns;
const LONG = `v=DKIM1; k=rsa; p=${"A".repeat(392)}`; // the length of an RSA-2048 record

async function rejection(p: Promise<unknown>): Promise<NetservaError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(NetservaError);
  return error as NetservaError;
}

function fakeServer(handler: Parameters<typeof createServer>[1]): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      resolve({ url: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`, server });
    }),
  );
}

describe("TXT records", () => {
  it("split into strings of at most 255 bytes and join back", () => {
    const parts = splitTxt(LONG);
    expect(parts.map((p) => p.length)).toEqual([255, LONG.length - 255]);
    expect(txtValue(txtPresentation(LONG))).toBe(LONG);
    expect(txtPresentation('a "quoted" \\ value')).toBe('"a \\"quoted\\" \\\\ value"');
    expect(() => splitTxt("bad\nline")).toThrow(/txt: /);
  });

  it("print provider writes a BIND fragment with absolute names", async () => {
    let out = "";
    const print = createPrintProvider({
      write: (t) => void (out += t),
      zones: createZoneListProvider({ zones: ["example.test"] }),
    });
    expect(await print.findZone("mail.example.test")).toBe("example.test");
    await print.replaceRRsets("example.test", [
      { changetype: "REPLACE", name: "example.test", type: "MX", ttl: 3600, records: ["10 mail.example.test."] },
      {
        changetype: "REPLACE",
        name: "s1._domainkey.example.test.",
        type: "TXT",
        ttl: 3600,
        records: [txtPresentation(LONG)],
      },
      { changetype: "DELETE", name: "old._domainkey.example.test.", type: "TXT" },
    ]);
    expect(out).toBe(
      `; zone example.test.\nexample.test.\t3600\tIN\tMX\t10 mail.example.test.\ns1._domainkey.example.test.\t3600\tIN\tTXT\t"${LONG.slice(0, 255)}" "${LONG.slice(255)}"\n; remove: old._domainkey.example.test. IN TXT\n`,
    );
    expect(bindFragment([])).toBe("");
  });
});

describe.skipIf(!pdnsAvailable)("PowerDNS provider against a real pdns_server", () => {
  beforeAll(async () => {
    pdns = await startPdns();
    await pdns.createZone("example.test");
    await pdns.createZone("sub.example.test");
    // The records the refusal tests check stay untouched: there from the start, not from another test.
    await provider().replaceRRsets("example.test", [
      { changetype: "REPLACE", name: "example.test", type: "MX", ttl: 300, records: ["10 mail.example.test."] },
      { changetype: "REPLACE", name: "mail.example.test", type: "A", ttl: 300, records: ["192.0.2.25"] },
    ]);
  }, 60_000);
  afterAll(async () => {
    await pdns?.stop();
  });
  const provider = () => createPowerDnsProvider({ url: pdns.url, apiKey: pdns.apiKey, timeoutMs: 3000 });
  const lookup = () => createDnsLookup({ servers: [pdns.resolver] });

  it("lists zones and finds the longest zone holding a name", async () => {
    const p = provider();
    expect((await p.listZones()).sort()).toEqual(["example.test.", "sub.example.test."]);
    expect(await p.findZone("a.sub.example.test")).toBe("sub.example.test");
    expect(await p.findZone("example.test")).toBe("example.test");
    expect(await p.findZone("other.test")).toBeUndefined();
  });

  it("replaces RRsets through the API and DNS answers them (node:dns and dig)", async () => {
    const p = provider();
    await p.replaceRRsets("example.test", [
      { changetype: "REPLACE", name: "example.test", type: "MX", ttl: 300, records: ["10 mail.example.test."] },
      { changetype: "REPLACE", name: "mail.example.test", type: "A", ttl: 300, records: ["192.0.2.25"] },
      {
        changetype: "REPLACE",
        name: "s1._domainkey.example.test",
        type: "TXT",
        ttl: 300,
        records: [txtPresentation(LONG)],
      },
    ]);
    const l = lookup();
    expect(await l.mx("example.test")).toEqual([{ priority: 10, exchange: "mail.example.test." }]);
    expect(await l.addresses("mail.example.test")).toEqual(["192.0.2.25"]);
    expect(await l.txt("s1._domainkey.example.test")).toEqual([LONG]);
    const { stdout } = await exec("dig", [
      "+short",
      "-p",
      String(pdns.dnsPort),
      "@127.0.0.1",
      "TXT",
      "s1._domainkey.example.test",
    ]);
    const strings = [...stdout.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? "");
    expect(strings.map((s) => s.length)).toEqual([255, LONG.length - 255]);
    expect(strings.join("")).toBe(LONG);
    expect((await p.getRRsets("example.test.", { name: "mail.example.test", type: "A" }))[0]).toMatchObject({
      name: "mail.example.test.",
      type: "A",
      ttl: 300,
      records: ["192.0.2.25"],
    });
  });

  it("DELETE removes an RRset and DNS stops answering it", async () => {
    const p = provider();
    // Its own record first: no test leans on what another published.
    await p.replaceRRsets("example.test", [
      { changetype: "REPLACE", name: "s1._domainkey.example.test", type: "TXT", ttl: 300, records: ['"v=DKIM1; p="'] },
    ]);
    expect(await lookup().txt("s1._domainkey.example.test")).toEqual(["v=DKIM1; p="]);
    await p.replaceRRsets("example.test", [{ changetype: "DELETE", name: "s1._domainkey.example.test.", type: "TXT" }]);
    expect(await lookup().txt("s1._domainkey.example.test")).toEqual([]);
  });

  it("replaces only the SPF value at the apex and keeps other TXT there", async () => {
    const p = provider();
    await p.replaceRRsets("example.test", [
      {
        changetype: "REPLACE",
        name: "example.test",
        type: "TXT",
        ttl: 300,
        records: ['"site-verification=abc"', '"v=spf1 -all"'],
      },
    ]);
    const spf = {
      check: "spf",
      name: "example.test.",
      type: "TXT" as const,
      values: ["v=spf1 mx a -all"],
      prefix: "v=spf1",
    };
    const outcome = await publishRecords(
      p,
      [spf, { check: "ptr", name: "25.2.0.192.in-addr.arpa.", type: "PTR" as const, values: ["mail.example.test."] }],
      300,
    );
    expect(outcome.published.map((x) => x.zone)).toEqual(["example.test"]);
    expect(outcome.skipped.map((x) => x.reason)).toEqual(["no zone at powerdns holds 25.2.0.192.in-addr.arpa."]);
    expect((await lookup().txt("example.test")).sort()).toEqual(["site-verification=abc", "v=spf1 mx a -all"]);
  });

  it("wrong API key: unauthenticated, names the setting, never shows the key, changes nothing", async () => {
    const secret = "wrong-key-0123456789abcdef";
    const p = createPowerDnsProvider({ url: pdns.url, apiKey: secret, timeoutMs: 3000 });
    const e = await rejection(
      p.replaceRRsets("example.test", [{ changetype: "DELETE", name: "example.test", type: "MX" }]),
    );
    expect(e.code).toBe("unauthenticated");
    expect(e.message).toMatch(/refused the API key \(HTTP 401\).*NETSERVA_PDNS_API_KEY/);
    expect(JSON.stringify({ m: e.message, s: e.stack, c: String(e.cause) })).not.toContain(secret);
    expect(JSON.stringify({ m: e.message })).not.toContain(pdns.apiKey);
    expect(await lookup().mx("example.test")).toEqual([{ priority: 10, exchange: "mail.example.test." }]);
  });

  it("4xx: a refused record and an unknown zone are clear errors, and the zone is unchanged", async () => {
    const p = provider();
    const bad = await rejection(
      p.replaceRRsets("example.test", [
        { changetype: "REPLACE", name: "mail.example.test", type: "A", ttl: 300, records: ["192.0.2.99"] },
        { changetype: "REPLACE", name: "example.test", type: "MX", ttl: 300, records: ["not an mx"] },
      ]),
    );
    expect(bad.code).toBe("invalid_argument");
    expect(bad.message).toMatch(/PowerDNS at http:\/\/127\.0\.0\.1:\d+ refused PATCH .* \(HTTP 422: .+\)/);
    // PowerDNS applies a PATCH atomically: the good half did not land either.
    expect(await lookup().addresses("mail.example.test")).toEqual(["192.0.2.25"]);
    const missing = await rejection(p.getRRsets("nowhere.test"));
    expect(missing.code).toBe("not_found");
    expect(missing.message).toContain("has no zone nowhere.test.");
  });

  it("down: unreachable with the URL, and a server that never answers times out", async () => {
    const down = createPowerDnsProvider({ url: `http://127.0.0.1:${await freePort()}`, apiKey: "k", timeoutMs: 2000 });
    const e = await rejection(down.listZones());
    expect(e.code).toBe("unavailable");
    expect(e.message).toMatch(/PowerDNS at http:\/\/127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\)/);
    const silent = await fakeServer(() => undefined);
    try {
      const slow = createPowerDnsProvider({ url: silent.url, apiKey: "k", timeoutMs: 300 });
      const t = await rejection(slow.listZones());
      expect(t.code).toBe("deadline_exceeded");
      expect(t.message).toMatch(/did not answer within 300 ms/);
    } finally {
      silent.server.closeAllConnections();
      silent.server.close();
    }
  });

  it("5xx: unavailable with PowerDNS's own error text", async () => {
    const broken = await fakeServer((_req, res) => {
      res.writeHead(500, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: "backend failed: database is locked" }));
    });
    try {
      const p = createPowerDnsProvider({ url: broken.url, apiKey: "k", timeoutMs: 2000 });
      const e = await rejection(p.listZones());
      expect(e.code).toBe("unavailable");
      expect(e.message).toMatch(/failed \(HTTP 500: backend failed: database is locked\)/);
    } finally {
      broken.server.close();
    }
  });

  it("refuses a URL with credentials and an empty key before any request", () => {
    expect(() => createPowerDnsProvider({ url: "http://user:pw@127.0.0.1:1", apiKey: "k" })).toThrow(
      /dns.url: must not carry credentials/,
    );
    expect(() => createPowerDnsProvider({ url: pdns.url, apiKey: "" })).toThrow(/dns.apiKey: no PowerDNS API key/);
    expect(() => createPowerDnsProvider({ url: "ftp://x", apiKey: "k" })).toThrow(/dns.url: must be http/);
  });
});
