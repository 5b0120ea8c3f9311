// Hosted domains followed by the ACME sweep, against a real Pebble answering DNS-01 through a real
// PowerDNS, on vnodes that exist only in the database: with `mail:tls acme <vnode> --all-domains`
// a domain added afterwards gets its certificate at the next sweep without another command, and a
// domain removed is no longer renewed nor served (its order and certificate go, the generation
// moves); without the switch, only a domain that asked for MTA-STS is followed (mta-sts.<domain>
// included), and an explicitly ordered domain that asks for MTA-STS later has the name added.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliRun, Harness } from "../helpers/controller-harness.ts";
import { pdnsAvailable } from "../helpers/pdns.ts";
import type { Pdns } from "../helpers/pdns.ts";
import { pebbleAvailable } from "../helpers/pebble.ts";
import { startAcmeLab, type AcmeLab } from "../helpers/acme-lab.ts";

let lab: AcmeLab;
let h: Harness;
let pdns: Pdns;
const ZONE = "acme-domains.test";

const sql = <T>(text: string, params?: unknown[]): Promise<T[]> => lab.sql<T>(text, params);
const addVnode = (name: string): Promise<void> => lab.addVnode(name);
const acme = (vnode: string, extra: string[] = []): Promise<CliRun> => lab.acme(vnode, extra);

async function addDomain(vnode: string, domain: string): Promise<void> {
  await pdns.createZone(domain);
  const r = await h.cli(["addvmaildomain", vnode, domain, "--skip-dns-check"]);
  expect(r.code, r.err).toBe(0);
}

/** The vnode's domain orders: domain → state and names. */
async function domainOrders(vnode: string): Promise<Map<string, { state: string; names: string[] }>> {
  const rows = await sql<{ purpose: string; state: string; names: string[] }>(
    `select a.purpose, a.state, a.names from acme_certificates a join vnodes v on v.id = a.vnode_id
     where v.name = ? and a.purpose like 'domain:%'`,
    [vnode],
  );
  return new Map(rows.map((r) => [r.purpose.slice("domain:".length), { state: r.state, names: [...r.names].sort() }]));
}

/** Names of the ACME certificates stored for the vnode (what its agent serves by SNI). */
async function storedNames(vnode: string): Promise<string[][]> {
  const rows = await sql<{ names: string[] }>(
    `select c.names from mail_certificates c join vnodes v on v.id = c.vnode_id
     where v.name = ? and c.issuer = 'acme' order by c.id`,
    [vnode],
  );
  return rows.map((r) => [...r.names].sort());
}

async function generation(vnode: string): Promise<number> {
  const [row] = await sql<{ generation: string | number }>("select generation from vnodes where name = ?", [vnode]);
  return Number(row?.generation);
}

describe.skipIf(!pdnsAvailable || !pebbleAvailable)("ACME certificates follow the hosted domains", () => {
  beforeAll(async () => {
    lab = await startAcmeLab(ZONE);
    ({ h, pdns } = lab);
  }, 120_000);

  afterAll(async () => {
    await lab?.close();
  });

  it("--all-domains: a domain added later gets its certificate at the next sweep; a removed one is dropped", async () => {
    await addVnode("ad1");
    const first = "ad1-first.example";
    await addDomain("ad1", first);
    const r = await acme("ad1", ["--all-domains"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("every hosted domain gets an ACME certificate (1 now");
    expect((await domainOrders("ad1")).get(first)?.state).toBe("valid");

    // Added afterwards: no command but the domain's own.
    const later = "ad1-later.example";
    await addDomain("ad1", later);
    expect((await domainOrders("ad1")).has(later)).toBe(false);
    await h.controller.checkCertificates();
    const orders = await domainOrders("ad1");
    expect(orders.get(later)).toEqual({ state: "valid", names: [`autoconfig.${later}`, `autodiscover.${later}`] });
    expect(await storedNames("ad1")).toEqual([
      [`autoconfig.${first}`, `autodiscover.${first}`],
      [`autoconfig.${later}`, `autodiscover.${later}`],
    ]);
    const shown = JSON.parse((await h.cli(["mail:tls", "show", "ad1", "--json"])).out) as Array<{
      certificate: string;
    }>;
    expect(shown.map((row) => row.certificate)).toEqual(["mail", `domain:${first}`, `domain:${later}`]);

    // Removed: its order and certificate go, and the next push says so (generation moved).
    const del = await h.cli(["delvmaildomain", "ad1", later, "--yes"]);
    expect(del.code, del.err).toBe(0);
    const before = await generation("ad1");
    await h.controller.checkCertificates();
    expect([...(await domainOrders("ad1")).keys()]).toEqual([first]);
    expect(await storedNames("ad1")).toEqual([[`autoconfig.${first}`, `autodiscover.${first}`]]);
    expect(await generation("ad1")).toBeGreaterThan(before);
    // Nothing more to follow: a further sweep changes nothing.
    const settled = await generation("ad1");
    await h.controller.checkCertificates();
    expect(await generation("ad1")).toBe(settled);
  }, 180_000);

  it("without the switch only domains that asked for MTA-STS are followed, mta-sts name included", async () => {
    await addVnode("ad2");
    expect((await acme("ad2")).code).toBe(0); // the mail host's: names the vnode's ACME server
    const sts = "ad2-sts.example";
    const plain = "ad2-plain.example";
    const named = "ad2-named.example";
    await addDomain("ad2", sts);
    await addDomain("ad2", plain);
    await addDomain("ad2", named);
    expect((await acme("ad2", ["--domain", named])).code).toBe(0);
    const policy = await h.cli(["mail:dns", "ad2", sts, "--mta-sts"]);
    expect(policy.code, policy.err).toBe(0);
    await h.controller.checkCertificates();
    let orders = await domainOrders("ad2");
    expect([...orders.keys()].sort()).toEqual([named, sts]);
    expect(orders.get(sts)).toEqual({
      state: "valid",
      names: [`autoconfig.${sts}`, `autodiscover.${sts}`, `mta-sts.${sts}`],
    });

    // The explicitly ordered domain asks for MTA-STS later: its certificate gets the name.
    expect((await h.cli(["mail:dns", "ad2", named, "--mta-sts"])).code).toBe(0);
    await h.controller.checkCertificates();
    orders = await domainOrders("ad2");
    expect(orders.get(named)).toEqual({
      state: "valid",
      names: [`autoconfig.${named}`, `autodiscover.${named}`, `mta-sts.${named}`],
    });
    expect(orders.has(plain)).toBe(false);
  }, 180_000);
});
