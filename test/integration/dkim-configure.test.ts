// mail:configure-dkim, mail:dns and mail:dns-check through the CLI against a real PowerDNS, read
// back over DNS: RSA and Ed25519 keys published, rotation (publish → visible → switch → finish),
// printed records for operators without PowerDNS, the record set of a domain published and
// checked (OK / MISSING / WRONG, PTR and forward-confirmed reverse DNS), the mail-data "domain
// needs a zone" rule answered by PowerDNS; and bad input that changes nothing anywhere.
import { createServer } from "node:http";
import type { Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileDesiredState } from "../../controller/compiler/compile-state.ts";
import { DkimKeyRow, Vnode } from "../../controller/db/entities/index.ts";
import { createDnsLookup } from "../../controller/dns/dns-lookup.ts";
import { publicKeyFromDns } from "../../controller/dkim/dkim-keygen.ts";
import { freePort, startHarness } from "../helpers/controller-harness.ts";
import type { Harness } from "../helpers/controller-harness.ts";
import { pdnsAvailable, startPdns } from "../helpers/pdns.ts";
import type { Pdns } from "../helpers/pdns.ts";

const D = "dkim.test";
const HOST = "mail.dkim.test";
const IP = "192.0.2.10";
let h: Harness;
let pdns: Pdns;

const generation = async (): Promise<number> =>
  Number((await h.db.em().fork().findOneOrFail(Vnode, { name: "vn1" })).generation);
const txt = (name: string) => createDnsLookup({ servers: [pdns.resolver] }).txt(name);
const keyRows = async () =>
  (
    await h.db
      .em()
      .fork()
      .find(DkimKeyRow, {}, { orderBy: { id: "asc" } })
  ).map((k) => `${k.selector}:${k.algorithm}:${k.state}`);
const pdnsEnv = (extra: Record<string, string> = {}) =>
  Object.assign(
    h.env,
    {
      NETSERVA_PDNS_URL: pdns.url,
      NETSERVA_PDNS_API_KEY: pdns.apiKey,
      NETSERVA_DNS_RESOLVER: pdns.resolver,
      NETSERVA_PDNS_SERVER_ID: undefined,
    },
    extra,
  );
const zoneRRsets = async (): Promise<string> => JSON.stringify((await pdns.api("GET", `/zones/${D}.`)).body);
const compiledKeys = async () => {
  const vnode = await h.db.em().fork().findOneOrFail(Vnode, { name: "vn1" });
  const state = await compileDesiredState(h.db.em().fork(), vnode);
  return state.dkimKeys.map(
    (k) => `${k.domain}/${k.selector}/${k.algorithm}/${k.privateKeyPem.startsWith("-----BEGIN PRIVATE KEY-----")}`,
  );
};

describe.skipIf(!pdnsAvailable)("DKIM and mail DNS commands against a real PowerDNS", () => {
  beforeAll(async () => {
    [h, pdns] = await Promise.all([startHarness(), startPdns()]);
    await pdns.createZone(D);
    await pdns.createZone("2.0.192.in-addr.arpa");
    expect((await h.cli(["vnode", "add", "vn1", "--address", `${IP}:7444`])).code).toBe(0);
    expect((await h.cli(["vnode", "set", "vn1", "--mail-hostname", HOST])).code).toBe(0);
    pdnsEnv();
  }, 180_000);
  afterAll(async () => {
    await h?.close();
    await pdns?.stop();
  });

  async function step1(): Promise<void> {
    const refused = await h.cli(["addvmaildomain", "vn1", "nozone.test"]);
    expect(refused.code).toBe(4);
    expect(refused.err).toMatch(/nozone\.test/);
    expect((await h.cli(["addvmaildomain", "vn1", D])).code).toBe(0);
    expect((await h.cli(["addvmaildomain", "vn1", "nozone.test", "--skip-dns-check"])).code).toBe(0);
  }

  async function step2(): Promise<void> {
    const before = { generation: await generation(), zone: await zoneRRsets(), keys: await keyRows() };
    const cases: Array<[string[], number, RegExp, Record<string, string>?]> = [
      [["--selector", "a.b"], 1, /^error: selector: DKIM selector 'a\.b' contains '\.'/m],
      [["--selector", "../etc"], 1, /^error: selector: /m],
      [["--selector", "a/b"], 1, /^error: selector: /m],
      [["--algorithm", "dsa"], 1, /^error: algorithm: 'dsa' is not rsa, ed25519 or both/m],
      [["--bits", "1000"], 1, /^error: bits: '1000' must be one of 1024, 2048, 3072, 4096/m],
      [
        ["--publish"],
        5,
        /PowerDNS at http:\/\/127\.0\.0\.1:\d+ refused the API key \(HTTP 401\).*NETSERVA_PDNS_API_KEY/,
        { NETSERVA_PDNS_API_KEY: "wrong-key-for-test-42" },
      ],
      [["--publish"], 3, /HTTP 404.*server id 'nosuch'/, { NETSERVA_PDNS_SERVER_ID: "nosuch" }],
    ];
    for (const [flags, code, message, env] of cases) {
      pdnsEnv(env);
      const run = await h.cli(["mail:configure-dkim", "vn1", D, ...flags]);
      expect([run.code, run.err], flags.join(" ")).toEqual([code, expect.stringMatching(message)]);
      expect(run.out + run.err).not.toContain("wrong-key-for-test-42");
      expect(run.out + run.err).not.toContain(pdns.apiKey);
    }
    pdnsEnv({ NETSERVA_PDNS_URL: `http://127.0.0.1:${await freePort()}` });
    const down = await h.cli(["mail:configure-dkim", "vn1", D, "--publish"]);
    expect([down.code, down.err]).toEqual([5, expect.stringMatching(/PowerDNS at .* is unreachable \(ECONNREFUSED\)/)]);
    const broken: Server = createServer(
      (_q, r) => void r.writeHead(503, { "Content-Type": "application/json" }).end('{"error":"try later"}'),
    );
    await new Promise<void>((resolve) => broken.listen(0, "127.0.0.1", resolve));
    const address = broken.address();
    pdnsEnv({ NETSERVA_PDNS_URL: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}` });
    const failing = await h.cli(["mail:configure-dkim", "vn1", D, "--publish"]);
    broken.close();
    expect([failing.code, failing.err]).toEqual([5, expect.stringMatching(/failed \(HTTP 503: try later\)/)]);
    pdnsEnv();
    const noZone = await h.cli(["mail:configure-dkim", "vn1", "nozone.test", "--publish"]);
    expect([noZone.code, noZone.err]).toEqual([
      1,
      expect.stringMatching(/^error: domain: no zone at powerdns holds nozone\.test/m),
    ]);
    expect(await generation()).toBe(before.generation);
    expect(await zoneRRsets()).toBe(before.zone);
    expect(await keyRows()).toEqual(before.keys);
  }

  async function step3(): Promise<void> {
    const g0 = await generation();
    const run = await h.cli(["mail:configure-dkim", "vn1", D, "--selector", "r1", "--publish", "--wait", "10"]);
    expect(run.code, run.err).toBe(0);
    expect(run.out).toContain("published r1._domainkey.dkim.test. TXT");
    expect(run.out).toContain(`signing ${D} with r1 on vn1`);
    const [record] = await txt(`r1._domainkey.${D}`);
    expect(record).toMatch(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{390,}$/);
    expect(publicKeyFromDns("rsa", (record ?? "").split("p=")[1] ?? "").asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(await generation()).toBe(g0 + 1);
    expect(await compiledKeys()).toEqual([`${D}/r1/rsa/true`]);
    const shown = JSON.parse((await h.cli(["shvmaildomain", "vn1", D, "--json"])).out) as Record<string, unknown>;
    expect(shown).toMatchObject({ dkimSelector: "r1", dkimAlgorithm: "rsa" });
    expect(JSON.stringify(shown)).not.toContain("PRIVATE");
    const again = await h.cli(["mail:configure-dkim", "vn1", D]);
    expect([again.code, again.err]).toEqual([4, expect.stringMatching(/already signs with r1 \(rsa\): use --rotate/)]);
  }

  async function step4(): Promise<void> {
    const g0 = await generation();
    const run = await h.cli([
      "mail:configure-dkim",
      "vn1",
      D,
      "--rotate",
      "--algorithm",
      "ed25519",
      "--selector",
      "e1",
      "--publish",
      "--wait",
      "10",
    ]);
    expect(run.code, run.err).toBe(0);
    expect(run.out).toMatch(
      /created ed25519 key e1[\s\S]*published e1\._domainkey[\s\S]*signing dkim\.test with e1[\s\S]*retired r1/,
    );
    const [ed] = await txt(`e1._domainkey.${D}`);
    expect(ed).toMatch(/^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
    expect(publicKeyFromDns("ed25519", (ed ?? "").split("p=")[1] ?? "").asymmetricKeyType).toBe("ed25519");
    expect((await txt(`r1._domainkey.${D}`)).length).toBe(1); // still there for mail in flight
    expect(await generation()).toBe(g0 + 1);
    expect(await compiledKeys()).toEqual([`${D}/e1/ed25519/true`]);
    expect(await keyRows()).toEqual(["r1:rsa:retired", "e1:ed25519:active"]);
    const finish = await h.cli(["mail:configure-dkim", "vn1", D, "--finish", "--publish"]);
    expect(finish.code, finish.err).toBe(0);
    expect(finish.out).toContain("removed retired key r1 (rsa) and its DNS record");
    expect(await txt(`r1._domainkey.${D}`)).toEqual([]);
    expect(await keyRows()).toEqual(["e1:ed25519:active"]);
    expect(await generation()).toBe(g0 + 1);
  }

  async function step5(): Promise<void> {
    Object.assign(h.env, { NETSERVA_PDNS_URL: undefined, NETSERVA_PDNS_API_KEY: undefined });
    const g0 = await generation();
    const run = await h.cli(["mail:configure-dkim", "vn1", "nozone.test", "--algorithm", "both", "--selector", "p"]);
    expect(run.code, run.err).toBe(0);
    const rsaLine =
      run.out.split("\n").find((l) => l.startsWith("p-rsa._domainkey.nozone.test.\t3600\tIN\tTXT\t")) ?? "";
    const strings = [...rsaLine.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? "");
    expect(strings.length).toBe(2);
    expect(strings[0]?.length).toBe(255);
    expect(run.out).toMatch(/p-ed25519\._domainkey\.nozone\.test\.\t3600\tIN\tTXT\t"v=DKIM1; k=ed25519; p=/);
    expect(await generation()).toBe(g0 + 1);
    const rotate = await h.cli(["mail:configure-dkim", "vn1", "nozone.test", "--rotate"]);
    expect(rotate.code, rotate.err).toBe(0);
    expect(rotate.err).toMatch(
      /not switched yet: rsa-\d{8} not visible over DNS at 127\.0\.0\.1:\d+; run the same command again/,
    );
    expect(await generation()).toBe(g0 + 1);
    pdnsEnv();
  }

  async function step6(): Promise<void> {
    const show = await h.cli(["mail:dns", "vn1", D]);
    expect(show.code, show.err).toBe(0);
    for (const line of [
      `${D}.\t3600\tIN\tMX\t10 ${HOST}.`,
      `${D}.\t3600\tIN\tTXT\t"v=spf1 mx a -all"`,
      `_dmarc.${D}.\t3600\tIN\tTXT\t"v=DMARC1; p=quarantine"`,
      `autoconfig.${D}.\t3600\tIN\tCNAME\t${HOST}.`,
      `autodiscover.${D}.\t3600\tIN\tCNAME\t${HOST}.`,
      `${HOST}.\t3600\tIN\tA\t${IP}`,
      `10.2.0.192.in-addr.arpa.\t3600\tIN\tPTR\t${HOST}.`,
    ])
      expect(show.out).toContain(line);
    expect(show.out).toMatch(/e1\._domainkey\.dkim\.test\.\t3600\tIN\tTXT\t"v=DKIM1; k=ed25519; p=/);
    const before = await h.cli(["mail:dns-check", "vn1", D]);
    expect(before.code).toBe(4);
    expect(before.out).toMatch(/mx\s+dkim\.test\.\s+MX\s+MISSING/);
    const pub = await h.cli([
      "mail:dns",
      "vn1",
      D,
      "--publish",
      "--rua",
      `mailto:dmarc@${D}`,
      "--dmarc-policy",
      "reject",
      "--mta-sts",
      "--tls-rpt",
    ]);
    expect(pub.code, pub.err).toBe(0);
    expect(pub.out).toContain(`published 10.2.0.192.in-addr.arpa. PTR (ptr) in zone 2.0.192.in-addr.arpa`);
    expect(pub.out).toContain(
      // The MX presents the controller CA's certificate: testing, never enforce (issue 15).
      `at https://mta-sts.${D}/.well-known/mta-sts.txt:\n; version: STSv1\n; mode: testing\n; mx: ${HOST}\n; max_age: 86400\n`,
    );
    expect(await txt(`_dmarc.${D}`)).toEqual([`v=DMARC1; p=reject; rua=mailto:dmarc@${D}`]);
    expect(await txt(`_smtp._tls.${D}`)).toEqual([`v=TLSRPTv1; rua=mailto:tlsrpt@${D}`]);
  }

  async function step7(): Promise<void> {
    const ok = await h.cli(["mail:dns-check", "vn1", D, "--format", "json"]);
    expect(ok.code, ok.out).toBe(0);
    const rows = JSON.parse(ok.out) as Array<{ check: string; status: string; expected: string; found: string }>;
    expect(rows.map((r) => r.check)).toEqual([
      "mx",
      "spf",
      "dmarc",
      "dkim:e1",
      "mta-sts",
      "mta-sts-host",
      "tls-rpt",
      "autoconfig",
      "autodiscover",
      "host",
      "ptr",
      "fcrdns",
    ]);
    expect(rows.every((r) => r.status === "OK")).toBe(true);
    expect(rows.find((r) => r.check === "fcrdns")).toMatchObject({
      expected: `${IP} → ${HOST}. → ${IP}`,
      found: `${IP} → ${HOST}. → ${IP}`,
    });
    await pdns.api("PATCH", `/zones/${D}.`, {
      rrsets: [
        {
          name: `${D}.`,
          type: "TXT",
          ttl: 60,
          changetype: "REPLACE",
          records: [{ content: '"v=spf1 -all"', disabled: false }],
        },
        { name: `_dmarc.${D}.`, type: "TXT", changetype: "DELETE" },
        {
          name: `${HOST}.`,
          type: "A",
          ttl: 60,
          changetype: "REPLACE",
          records: [{ content: "192.0.2.77", disabled: false }],
        },
      ],
    });
    const bad = await h.cli(["mail:dns-check", "vn1", D]);
    expect(bad.code).toBe(4);
    expect(bad.err).toMatch(/error: 4 of 12 DNS checks not OK/);
    expect(bad.out).toMatch(/spf\s+dkim\.test\.\s+TXT\s+WRONG\s+v=spf1 mx a -all\s+v=spf1 -all/);
    expect(bad.out).toMatch(/dmarc\s+_dmarc\.dkim\.test\.\s+TXT\s+MISSING/);
    expect(bad.out).toMatch(/host\s+mail\.dkim\.test\.\s+A\s+WRONG\s+192\.0\.2\.10\s+192\.0\.2\.77/);
    expect(bad.out).toMatch(/fcrdns\s+192\.0\.2\.10\s+PTR\+A\s+WRONG .*→ 192\.0\.2\.77/);
    expect((await h.cli(["mail:dns", "vn1", D, "--publish"])).code).toBe(0);
    expect((await h.cli(["mail:dns-check", "vn1", D])).code).toBe(0);
    // The whole vnode: dkim.test is fine again, nozone.test (no zone anywhere) is not.
    const all = JSON.parse((await h.cli(["mail:dns-check", "vn1", "--json"])).out) as Array<{
      domain: string | null;
      status: string;
    }>;
    expect(new Set(all.filter((r) => r.status !== "OK").map((r) => r.domain))).toEqual(new Set(["nozone.test"]));
  }

  async function step8(): Promise<void> {
    const zone = await zoneRRsets();
    for (const [flags, message] of [
      [["--spf", "include:x -all"], /^error: spf: must start with 'v=spf1'/m],
      [["--dmarc-policy", "block"], /^error: dmarc-policy: 'block' is not none, quarantine or reject/m],
      [["--rua", "dmarc@dkim.test"], /^error: rua: 'dmarc@dkim\.test' must be a mailto: URI/m],
    ] as const) {
      const run = await h.cli(["mail:dns", "vn1", D, "--publish", ...flags]);
      expect([run.code, run.err]).toEqual([1, expect.stringMatching(message)]);
    }
    expect(await zoneRRsets()).toBe(zone);
  }
  // One story, run in this order: each step builds on what the steps before it published (the
  // domain, r1, the rotation to e1, the records), so they are one test, not tests that lean on
  // each other's leftovers under a shuffled order.
  const steps: Array<[string, () => Promise<void>]> = [
    ["the mail-data zone rule asks PowerDNS: a domain without a zone is refused, one with a zone is added", step1],
    ["refuses bad input naming the field, and changes nothing on the vnode or in DNS", step2],
    ["--publish an RSA key: visible over DNS, then signing on the vnode (generation +1)", step3],
    ["--rotate to Ed25519: new selector published first, switch once visible, old one removed with --finish", step4],
    ["without PowerDNS: prints the record split into 255-byte strings; a rotation waits for it in DNS", step5],
    ["mail:dns --show prints MX, SPF, DMARC, DKIM, autoconfig, host and PTR; --publish puts them in PowerDNS", step6],
    [
      "mail:dns-check: all OK (exit 0) incl. PTR and FCrDNS; then WRONG and MISSING with both sides shown (exit 4)",
      step7,
    ],
    ["mail:dns refuses bad policy flags naming them, before anything is published", step8],
  ];
  it("configure-dkim, rotation, mail:dns and mail:dns-check against PowerDNS, step by step", async () => {
    for (const [title, step] of steps) {
      try {
        await step();
      } catch (err) {
        throw new Error(`step "${title}" failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }
  }, 300_000);
});
