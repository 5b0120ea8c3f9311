// ACME orders against a real Pebble whose DNS-01 checks ask a real PowerDNS, driven through the
// CLI and the controller's ACME sweep, on vnodes that exist only in the database (what reaches a
// running vnode is acme-mail.test.ts): the certificate is issued for the mail host name and
// chains to Pebble's root; `mail:tls show` tells issuer, names, expiry and next renewal; a name in
// a zone PowerDNS does not serve is refused with a clear error and the served certificate kept;
// an unreachable ACME server fails visibly (show, mail:status, metrics), backs off, and the next
// due sweep succeeds; two controllers sweeping at once run one order; a hosted domain's names
// (autoconfig., autodiscover., mail.) get their own certificate in the per-name seam
// (mail_certificates); `mail:tls clear` goes back to the controller's CA.
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAcmeOrder } from "../../controller/acme/acme-mail-host.ts";
import type { CliRun, Harness } from "../helpers/controller-harness.ts";
import { pdnsAvailable } from "../helpers/pdns.ts";
import type { Pdns } from "../helpers/pdns.ts";
import { pebbleAvailable } from "../helpers/pebble.ts";
import type { Pebble } from "../helpers/pebble.ts";
import { startAcmeLab, type AcmeLab } from "../helpers/acme-lab.ts";

let lab: AcmeLab;
let h: Harness;
let pdns: Pdns;
let pebble: Pebble;
let root: string;
const ZONE = "acme-orders.test";

const show = (vnode: string): Promise<ShowRow> => lab.show<ShowRow>(vnode);
const sql = <T>(text: string, params?: unknown[]): Promise<T[]> => lab.sql<T>(text, params);
const storedChain = (vnode: string): Promise<string> => lab.storedChain(vnode);
const addVnode = (name: string, hostname?: string): Promise<void> => lab.addVnode(name, hostname);
const acme = (vnode: string, extra: string[] = []): Promise<CliRun> => lab.acme(vnode, extra);

interface ShowRow {
  vnode: string;
  hostname: string;
  source: string;
  issuer: string | null;
  names: string[];
  notAfter: string | null;
  nextRenewal: string | null;
  acme: string | null;
  failures: number;
  lastError: string | null;
}

function verifiesAgainstRoot(chainPem: string, name: string): void {
  const certs = chainPem.split(/(?=-----BEGIN CERTIFICATE-----)/).map((p) => new X509Certificate(p));
  const [leaf, ...intermediates] = certs;
  if (!leaf) throw new Error("empty chain");
  expect(leaf.checkHost(name)).toBe(name);
  const rootCert = new X509Certificate(root);
  let current = leaf;
  for (const next of [...intermediates, rootCert]) {
    expect(current.verify(next.publicKey)).toBe(true);
    current = next;
  }
  expect(current.subject).toBe(rootCert.subject);
}

describe.skipIf(!pdnsAvailable || !pebbleAvailable)("ACME orders against Pebble and PowerDNS", () => {
  beforeAll(async () => {
    lab = await startAcmeLab(ZONE);
    ({ h, pdns, pebble } = lab);
    root = await pebble.rootPem();
  }, 120_000);

  afterAll(async () => {
    await lab?.close();
  });

  it("issues the mail host certificate over DNS-01 and shows it; clear goes back to the CA", async () => {
    await addVnode("ao1");
    const r = await acme("ao1");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`ACME certificate for mail.ao1.${ZONE}`);
    verifiesAgainstRoot(await storedChain("ao1"), `mail.ao1.${ZONE}`);

    const row = await show("ao1");
    expect(row.source).toBe("acme");
    expect(row.acme).toBe("valid");
    expect(row.issuer).toMatch(/^Pebble Intermediate CA/);
    expect(row.names).toEqual([`mail.ao1.${ZONE}`]);
    expect(row.failures).toBe(0);
    // Renewal at 2/3 of the lifetime: about 40 of Pebble's 60 minutes from now.
    const untilRenewal = Date.parse(row.nextRenewal ?? "") - Date.now();
    expect(untilRenewal).toBeGreaterThan(30 * 60_000);
    expect(untilRenewal).toBeLessThan(45 * 60_000);
    // The challenge record is gone again.
    const rrsets = (await pdns.api("GET", `/zones/${ZONE}.`)).body as { rrsets: Array<{ name: string }> };
    expect(rrsets.rrsets.filter((s) => s.name.startsWith("_acme-challenge"))).toEqual([]);

    const cleared = await h.cli(["mail:tls", "clear", "ao1"]);
    expect(cleared.code, cleared.err).toBe(0);
    const after = await show("ao1");
    // The CA issues its own at the next push that reaches the vnode (this one never runs an agent).
    expect(["ca", "none yet"]).toContain(after.source);
    expect(after.acme).toBeNull();
    expect(after.issuer ?? "").not.toMatch(/Pebble/);
  }, 120_000);

  it("refuses a name in a zone PowerDNS does not serve, clearly, and keeps the served certificate", async () => {
    const own = "ao2-zone.example";
    await pdns.createZone(own);
    await addVnode("ao2", `mail.${own}`);
    const first = await acme("ao2");
    expect(first.code, first.err).toBe(0);
    const before = await storedChain("ao2");

    // PowerDNS stops serving the host name's zone: DNS-01 cannot be answered for it.
    expect((await pdns.api("DELETE", `/zones/${own}.`)).status).toBe(204);
    const r = await acme("ao2");
    expect(r.code).toBe(4);
    expect(r.err).toContain(`mail.${own}: no zone for it in powerdns`);
    expect(r.err).toContain("certificate in use is kept");
    const row = await show("ao2");
    expect(row.acme).toBe("failing");
    expect(row.failures).toBe(1);
    expect(row.lastError).toContain("no zone for it");
    // Still the ACME certificate from before, byte for byte.
    expect(row.source).toBe("acme");
    expect(await storedChain("ao2")).toBe(before);
    const log = await sql<{ result: string }>(
      "select result from command_log where command = 'mail:tls acme' and vnode_name = 'ao2' order by id",
    );
    expect(log.map((l) => l.result)).toEqual(["ok", "refused"]);
  }, 120_000);

  it("an unreachable ACME server fails visibly, backs off, and the next due sweep renews", async () => {
    await addVnode("ao3");
    const first = await acme("ao3");
    expect(first.code, first.err).toBe(0);
    const served = await storedChain("ao3");
    const failedBefore = await metric('netserva_acme_orders_total{result="failed"}');
    await pebble.setUp(false);
    try {
      await sql(
        "update acme_certificates set next_attempt_at = now() where vnode_id = (select id from vnodes where name = 'ao3')",
      );
      await h.controller.checkCertificates();
      const row = await show("ao3");
      expect(row.acme).toBe("failing");
      expect(row.failures).toBe(1);
      expect(row.lastError).toContain("unreachable");
      // Backed off: the next attempt is acmeRetrySeconds (600 s) away, and a sweep now does nothing.
      expect(Date.parse(row.nextRenewal ?? "") - Date.now()).toBeGreaterThan(500_000);
      await h.controller.checkCertificates();
      expect((await show("ao3")).failures).toBe(1);
      expect(await storedChain("ao3")).toBe(served);
      expect(await metric('netserva_acme_orders_total{result="failed"}')).toBe(failedBefore + 1);
      expect(await metric('netserva_acme_certificate_failures{vnode="ao3",purpose="mail-host"}')).toBe(1);
      const status = await h.cli(["mail:status", "ao3", "--json"]);
      const view = JSON.parse(status.out) as { acme: { failures: number; lastError: string } | null };
      expect(view.acme?.failures).toBe(1);
      expect(view.acme?.lastError).toContain("unreachable");
    } finally {
      await pebble.setUp(true);
    }
    // Back up, and due again: the sweep renews and the failure count resets.
    await sql(
      "update acme_certificates set next_attempt_at = now() where vnode_id = (select id from vnodes where name = 'ao3')",
    );
    await h.controller.checkCertificates();
    const row = await show("ao3");
    expect(row.acme).toBe("valid");
    expect(row.failures).toBe(0);
    expect(await storedChain("ao3")).not.toBe(served);
    expect(await metric('netserva_acme_certificate_failures{vnode="ao3",purpose="mail-host"}')).toBe(0);
  }, 180_000);

  it("a hosted domain's names get their own certificate in the per-name seam, shown beside the mail one", async () => {
    const domain = "ao5-domain.example";
    await pdns.createZone(domain);
    await addVnode("ao5");
    const hosted = await h.cli(["addvmaildomain", "ao5", domain, "--skip-dns-check"]);
    expect(hosted.code, hosted.err).toBe(0);
    const r = await acme("ao5", ["--domain", domain, "--mail-name"]);
    expect(r.code, r.err).toBe(0);
    const names = [`mail.${domain}`, `autoconfig.${domain}`, `autodiscover.${domain}`];
    expect(r.out).toContain(`ACME certificate for ${names.join(", ")}`);
    const stored = await sql<{ names: string[]; issuer: string; pem: string }>(
      `select c.names, c.issuer, c.certificate_chain_pem as pem from mail_certificates c
       join vnodes v on v.id = c.vnode_id where v.name = 'ao5'`,
    );
    expect(stored).toHaveLength(1);
    expect(stored[0]?.issuer).toBe("acme");
    expect(stored[0]?.names).toEqual(names);
    for (const name of names) verifiesAgainstRoot(stored[0]?.pem ?? "", name);

    const rows = JSON.parse((await h.cli(["mail:tls", "show", "ao5", "--json"])).out) as Array<
      ShowRow & { certificate: string }
    >;
    expect(rows.map((row) => row.certificate)).toEqual(["mail", `domain:${domain}`]);
    expect(rows[1]).toMatchObject({ source: "acme", acme: "valid", failures: 0 });
    expect([...(rows[1]?.names ?? [])].sort()).toEqual([...names].sort());

    // Ordering again replaces the stored certificate instead of adding a second one.
    expect((await acme("ao5", ["--domain", domain, "--mail-name"])).code).toBe(0);
    expect(
      await sql("select id from mail_certificates where vnode_id = (select id from vnodes where name = 'ao5')"),
    ).toHaveLength(1);

    const elsewhere = await acme("ao5", ["--domain", "not-hosted.example"]);
    expect(elsewhere.code).toBe(3);
    expect(elsewhere.err).toContain("domain not-hosted.example is not hosted on vnode ao5");

    expect((await h.cli(["mail:tls", "clear", "ao5"])).code).toBe(0);
    expect(
      await sql("select id from mail_certificates where vnode_id = (select id from vnodes where name = 'ao5')"),
    ).toHaveLength(0);
  }, 120_000);

  it("two controllers running the same due order at once: one runs it, the other finds it claimed", async () => {
    await addVnode("ao4");
    const first = await acme("ao4");
    expect(first.code, first.err).toBe(0);
    await sql(
      "update acme_certificates set next_attempt_at = now() where vnode_id = (select id from vnodes where name = 'ao4')",
    );
    const [row] = await sql<{ id: number }>(
      "select a.id from acme_certificates a join vnodes v on v.id = a.vnode_id where v.name = 'ao4'",
    );
    const { createPowerDnsProvider } = await import("../../controller/dns/powerdns-provider.ts");
    const run = (owner: string) =>
      runAcmeOrder(h.db.em().fork(), row?.id ?? 0, {
        dns: createPowerDnsProvider({ url: pdns.url, apiKey: pdns.apiKey }),
        retry: { retryMs: 1000, maxMs: 1000 },
        owner,
        onlyIfDue: true,
      });
    const results = await Promise.all([run("controller-a"), run("controller-b"), run("controller-c")]);
    expect(results.filter((r) => r.outcome === "issued")).toHaveLength(1);
    expect(results.filter((r) => r.outcome === "busy")).toHaveLength(2);
  }, 120_000);
});

async function metric(sample: string): Promise<number> {
  const line = (await h.metrics.text()).split("\n").find((l) => l.startsWith(`${sample} `));
  return line === undefined ? Number.NaN : Number(line.slice(sample.length + 1));
}
