// The controller side of served MTA-STS (issue 15): `mail:dns --mta-sts` prints and publishes a
// policy in mode testing while the MX presents the controller CA's certificate; the compiled
// desired state carries the same policy for the vnode to serve, the named certificates (the SNI
// seam, mail_certificates) and the web listener; once an ACME certificate for the MX host is in
// the seam, both say enforce and the _mta-sts id changes with the text.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileDesiredState } from "../../controller/compiler/compile-state.ts";
import { MailCertificate, Vnode } from "../../controller/db/entities/index.ts";
import { bumpGeneration } from "../../controller/db/generation.ts";
import { mtaStsId } from "../../controller/dns/mail-records.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";
import { createTestCa, type TestCa } from "../helpers/mail-tls.ts";

const HOST = "mail.sts-state.test";
const D = "sts-state.test";
let h: Harness;
let acme: TestCa;

const vnode = () => h.db.em().fork().findOneOrFail(Vnode, { name: "vn1" });
const compiled = async () => compileDesiredState(h.db.em().fork(), await vnode());
const stsId = (out: string): string => /_mta-sts\.[^\n]*"v=STSv1; id=([0-9a-f]+)"/.exec(out)?.[1] ?? "none";

describe("MTA-STS policy: testing until the MX has an ACME certificate", () => {
  beforeAll(async () => {
    [h, acme] = await Promise.all([startHarness(), createTestCa("pretend ACME root")]);
    expect((await h.cli(["vnode", "add", "vn1", "--address", "192.0.2.20:7444"])).code).toBe(0);
    const set = await h.cli(["vnode", "set", "vn1", "--mail-hostname", HOST, "--web-listen", "192.0.2.20:443"]);
    expect(set.code, set.err).toBe(0);
    expect(set.out).toContain("web 192.0.2.20:443");
    expect((await h.cli(["addvmaildomain", "vn1", D, "--skip-dns-check"])).code).toBe(0);
  });

  afterAll(async () => {
    await h?.close();
    acme?.dispose();
  });

  it("refuses a bad --web-listen or --web-directory, naming the flag, and changes nothing", async () => {
    const before = (await vnode()).generation;
    const name = await h.cli(["vnode", "set", "vn1", "--web-listen", "www.example.test:443"]);
    expect(name.code).toBe(1);
    expect(name.err).toMatch(/web-listen/);
    const dir = await h.cli(["vnode", "set", "vn1", "--web-directory", "relative/../x"]);
    expect(dir.code).toBe(1);
    expect(dir.err).toMatch(/web-directory/);
    expect((await vnode()).generation).toBe(before);
  });

  it("prints, compiles and then enforces one policy whose id follows its text", async () => {
    const served0 = await compiled();
    expect(served0.settings?.webListen).toBe("192.0.2.20:443");
    expect(served0.served).toEqual([expect.objectContaining({ domain: D, mtaStsPolicy: "", mailHost: HOST })]);

    const gen0 = (await vnode()).generation;
    const first = await h.cli(["mail:dns", "vn1", D, "--mta-sts"]);
    expect(first.code, first.err).toBe(0);
    expect(first.out).toContain("; mode: testing\n");
    expect(first.out).not.toContain("enforce\n");
    // Turning MTA-STS on changes what the vnode serves: a new generation.
    expect((await vnode()).generation).toBeGreaterThan(gen0);
    const s1 = await compiled();
    const policy1 = s1.served[0]?.mtaStsPolicy ?? "";
    expect(policy1).toBe(`version: STSv1\nmode: testing\nmx: ${HOST}\nmax_age: 86400\n`);
    expect(stsId(first.out)).toBe(mtaStsId(policy1));
    expect(s1.certificates).toEqual([]);

    // An ACME certificate for the MX host arrives through the seam (what the ACME code does).
    const pair = await acme.issue([HOST, `mail.${D}`]);
    await h.db
      .em()
      .fork()
      .transactional(async (tx) => {
        const v = await tx.findOneOrFail(Vnode, { name: "vn1" });
        tx.create(MailCertificate, {
          vnodeId: v.id,
          names: [HOST, `mail.${D}`],
          issuer: "acme",
          certificateChainPem: pair.chainPem,
          privateKeyPem: pair.keyPem,
          notAfter: new Date(Date.now() + 86_400_000),
        });
        await tx.flush();
        await bumpGeneration(tx, v.id);
      });
    const s2 = await compiled();
    const policy2 = s2.served[0]?.mtaStsPolicy ?? "";
    expect(policy2).toBe(`version: STSv1\nmode: enforce\nmx: ${HOST}\nmax_age: 604800\n`);
    expect(s2.certificates).toHaveLength(1);
    expect(s2.certificates[0]).toMatchObject({ names: [HOST, `mail.${D}`], issuer: "acme" });
    // The domain has a certificate for its own mail host name: clients are sent there.
    expect(s2.served[0]?.mailHost).toBe(`mail.${D}`);
    const second = await h.cli(["mail:dns", "vn1", D]);
    expect(second.code, second.err).toBe(0);
    expect(second.out).toContain("; mode: enforce\n");
    expect(stsId(second.out)).toBe(mtaStsId(policy2));
    expect(stsId(second.out)).not.toBe(stsId(first.out));
  });
});
