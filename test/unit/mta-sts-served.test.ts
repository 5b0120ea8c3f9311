// MTA-STS mode and the answers of the served site, without a network: testing until the MX's
// certificate comes from ACME (and from no controller CA), the policy id following the text, and
// the client-settings XML escaped so a real parser reads back exactly what went in.
import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { XMLParser } from "fast-xml-parser";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { domainRecords, mtaStsId } from "../../controller/dns/mail-records.ts";
import { policyValues } from "../../controller/dns/mail-policy.ts";
import { coversName, mtaStsModeFor, mtaStsPolicy } from "../../controller/dns/mta-sts.ts";
import { autoconfigXml, autodiscoverXml } from "../../agent/web/client-config.ts";
import { certMapOf, pairFor } from "../../agent/web/cert-map.ts";
import { answer, siteOf } from "../../agent/web/served-site.ts";
import { siteFiles } from "../../agent/web/web-directory.ts";
import { renderPostfixSniMap, renderSniFiles } from "../../agent/mail/sni-files.ts";
import { renderDovecotConf } from "../../agent/dovecot/render-conf.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import { mailTlsNotAfter } from "../../agent/health/mail-tls-expiry.ts";
import { createTestCa, type TestCa } from "../helpers/mail-tls.ts";

const HOST = "mail.unit.test";
let acmeCa: TestCa;
let controllerCa: TestCa;
let acmeLeaf: { chainPem: string; keyPem: string };
let caLeaf: { chainPem: string; keyPem: string };

beforeAll(async () => {
  [acmeCa, controllerCa] = await Promise.all([createTestCa("pretend ACME root"), createTestCa("controller CA")]);
  [acmeLeaf, caLeaf] = await Promise.all([acmeCa.issue([HOST]), controllerCa.issue([HOST])]);
});
afterAll(() => {
  acmeCa?.dispose();
  controllerCa?.dispose();
});

describe("MTA-STS mode", () => {
  it("is testing with the controller CA's certificate, an operator's, or none; enforce only with ACME's", () => {
    const cas = [controllerCa.caPem];
    const mail = (issuer: string, chain: string) => ({ names: [HOST], issuer, certificateChainPem: chain });
    expect(mtaStsModeFor(HOST, [], null, cas)).toBe("testing");
    expect(mtaStsModeFor(HOST, [], mail("ca", caLeaf.chainPem), cas)).toBe("testing");
    expect(mtaStsModeFor(HOST, [], mail("operator", acmeLeaf.chainPem), cas)).toBe("testing");
    expect(mtaStsModeFor(HOST, [], mail("acme", acmeLeaf.chainPem), cas)).toBe("enforce");
    // Labelled acme but signed by a controller CA: not publicly trusted.
    expect(mtaStsModeFor(HOST, [], mail("acme", caLeaf.chainPem), cas)).toBe("testing");
    // A named certificate for the MX host wins over the mail one, both ways.
    expect(mtaStsModeFor(HOST, [mail("acme", acmeLeaf.chainPem)], mail("ca", caLeaf.chainPem), cas)).toBe("enforce");
    expect(mtaStsModeFor(HOST, [mail("ca", caLeaf.chainPem)], mail("acme", acmeLeaf.chainPem), cas)).toBe("testing");
    // A certificate for other names does not count for the MX.
    const other = { names: ["mta-sts.unit.test"], issuer: "acme", certificateChainPem: acmeLeaf.chainPem };
    expect(mtaStsModeFor(HOST, [other], mail("ca", caLeaf.chainPem), cas)).toBe("testing");
  });

  it("the policy text and the _mta-sts id change together with the mode", () => {
    const policy = policyValues({ mtaSts: true });
    const txt = (mode: "testing" | "enforce") =>
      domainRecords({ domain: "unit.test", mailHost: HOST, policy, dkim: [], mtaStsMode: mode }).find(
        (r) => r.check === "mta-sts",
      )?.values[0];
    expect(mtaStsPolicy(HOST, "testing")).toBe(`version: STSv1\nmode: testing\nmx: ${HOST}\nmax_age: 86400\n`);
    expect(txt("testing")).toBe(`v=STSv1; id=${mtaStsId(mtaStsPolicy(HOST, "testing"))}`);
    expect(txt("enforce")).toBe(`v=STSv1; id=${mtaStsId(mtaStsPolicy(HOST, "enforce"))}`);
    expect(txt("testing")).not.toBe(txt("enforce"));
    expect(
      domainRecords({ domain: "unit.test", mailHost: HOST, policy, dkim: [] }).find((r) => r.check === "mta-sts"),
    ).toMatchObject({ values: [txt("testing")] });
  });

  it("wildcards cover one label only", () => {
    expect(coversName(["*.unit.test"], "mta-sts.unit.test")).toBe(true);
    expect(coversName(["*.unit.test"], "a.b.unit.test")).toBe(false);
    expect(coversName(["*.unit.test"], "unit.test")).toBe(false);
  });
});

describe("served site", () => {
  const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@", parseTagValue: false });

  it("escapes what it writes: the parser reads back the exact text", () => {
    const nasty = `x"&<y>'.test`;
    const doc = xml.parse(autoconfigXml(nasty, `h&<>"'`)) as {
      clientConfig: { emailProvider: { "@id": string; domain: string; incomingServer: { hostname: string } } };
    };
    expect(doc.clientConfig.emailProvider["@id"]).toBe(nasty);
    expect(doc.clientConfig.emailProvider.domain).toBe(nasty);
    expect(doc.clientConfig.emailProvider.incomingServer.hostname).toBe(`h&<>"'`);
    const ad = xml.parse(autodiscoverXml("m.test", `a&b<c>@x.test`)) as {
      Autodiscover: { Response: { Account: { Protocol: Array<{ LoginName: string }> } } };
    };
    expect(ad.Autodiscover.Response.Account.Protocol.map((p) => p.LoginName)).toEqual([
      "a&b<c>@x.test",
      "a&b<c>@x.test",
    ]);
  });

  it("refuses a bad served domain or policy naming the field; answers 404 for what it does not serve", () => {
    const state = (served: Array<{ domain: string; mtaStsPolicy: string; mailHost: string }>) =>
      create(DesiredStateSchema, { served });
    expect(() => siteOf(state([{ domain: "../etc", mtaStsPolicy: "", mailHost: HOST }]))).toThrow(
      /served\[0\]\.domain/,
    );
    expect(() => siteOf(state([{ domain: "a.test", mtaStsPolicy: "mode: enforce\n", mailHost: HOST }]))).toThrow(
      /served\[0\]\.mta_sts_policy/,
    );
    expect(() => siteOf(state([{ domain: "a.test", mtaStsPolicy: "", mailHost: "bad host" }]))).toThrow(
      /served\[0\]\.mail_host/,
    );
    const site = siteOf(state([{ domain: "a.test", mtaStsPolicy: mtaStsPolicy(HOST, "testing"), mailHost: HOST }]));
    const ask = (host: string, path: string, method = "GET", body = "") =>
      answer(site, { method, host, path, query: new URLSearchParams(), body }).status;
    expect(ask("mta-sts.a.test", "/.well-known/mta-sts.txt")).toBe(200);
    expect(ask("mta-sts.a.test", "/.well-known/mta-sts.txt", "POST")).toBe(404);
    expect(ask("mta-sts.b.test", "/.well-known/mta-sts.txt")).toBe(404);
    expect(ask("a.test", "/.well-known/mta-sts.txt")).toBe(404);
    expect(ask("autoconfig.a.test", "/mail/config-v1.1.xml")).toBe(200);
    expect(ask("autoconfig.b.test", "/mail/config-v1.1.xml")).toBe(404);
    expect(
      ask("autodiscover.a.test", "/autodiscover/autodiscover.xml", "POST", "<EMailAddress>x@a.test</EMailAddress>"),
    ).toBe(200);
    expect(
      ask("autodiscover.a.test", "/autodiscover/autodiscover.xml", "POST", "<EMailAddress>x@b.test</EMailAddress>"),
    ).toBe(404);
    expect(
      ask(
        "autodiscover.a.test",
        "/autodiscover/autodiscover.xml",
        "POST",
        "<EMailAddress>not an address</EMailAddress>",
      ),
    ).toBe(404);
    // The directory alternative writes the same answers per virtual host.
    expect([...siteFiles(site).keys()].sort()).toEqual([
      "a.test/.well-known/autoconfig/mail/config-v1.1.xml",
      "autoconfig.a.test/mail/config-v1.1.xml",
      "autodiscover.a.test/autodiscover/autodiscover.xml",
      "mta-sts.a.test/.well-known/mta-sts.txt",
    ]);
  });

  it("the cert map: exact name, then wildcard, then the mail certificate; a mismatched key names its field", () => {
    const state = create(DesiredStateSchema, {
      tls: { certificateChainPem: caLeaf.chainPem, privateKeyPem: caLeaf.keyPem },
      certificates: [
        { names: ["*.unit.test"], certificateChainPem: acmeLeaf.chainPem, privateKeyPem: acmeLeaf.keyPem },
        { names: ["mta-sts.unit.test"], certificateChainPem: caLeaf.chainPem, privateKeyPem: caLeaf.keyPem },
      ],
    });
    const map = certMapOf(state);
    expect(pairFor(map, "MTA-STS.unit.test")?.chainPem).toBe(caLeaf.chainPem);
    expect(pairFor(map, "autoconfig.unit.test")?.chainPem).toBe(acmeLeaf.chainPem);
    expect(pairFor(map, "other.test")).toBe(map.fallback);
    const bad = create(DesiredStateSchema, {
      certificates: [{ names: ["a.test"], certificateChainPem: acmeLeaf.chainPem, privateKeyPem: caLeaf.keyPem }],
    });
    expect(() => certMapOf(bad)).toThrow(/certificates\[0\]\.private_key_pem/);
    const unnamed = create(DesiredStateSchema, {
      certificates: [{ names: [], certificateChainPem: acmeLeaf.chainPem, privateKeyPem: acmeLeaf.keyPem }],
    });
    expect(() => certMapOf(unnamed)).toThrow(/certificates\[0\]\.names/);
  });

  it("SNI for the mail daemons: one file set per certificate, a name only once, wildcards for Postfix only", () => {
    const paths = createVnodePaths("/srv/sni-unit");
    const state = create(DesiredStateSchema, {
      certificates: [
        { names: ["mail.a.test", "*.a.test"], certificateChainPem: acmeLeaf.chainPem, privateKeyPem: acmeLeaf.keyPem },
        { names: ["mail.a.test", "mail.b.test"], certificateChainPem: caLeaf.chainPem, privateKeyPem: caLeaf.keyPem },
      ],
    });
    const { files, entries } = renderSniFiles(paths, state);
    expect(entries.map((e) => e.names)).toEqual([["mail.a.test", "*.a.test"], ["mail.b.test"]]);
    expect(files.size).toBe(6);
    for (const e of entries) expect(files.get(e.key)?.mode).toBe(0o600);
    const map = renderPostfixSniMap(entries)
      .split("\n")
      .filter((l) => !l.startsWith("#") && l !== "");
    expect(map).toEqual([
      `mail.a.test ${entries[0]?.keyAndChain}`,
      `.a.test ${entries[0]?.keyAndChain}`,
      `mail.b.test ${entries[1]?.keyAndChain}`,
    ]);
    const conf = renderDovecotConf({
      paths,
      mailHostname: "mail.unit.test",
      listenAddresses: [],
      vmailUid: 5000,
      vmailGid: 5000,
      sni: entries,
    });
    expect(conf.match(/^local_name \S+ \{$/gm)).toEqual(["local_name mail.a.test {", "local_name mail.b.test {"]);
  });

  it("the expiry the health report carries is the earliest of the mail and SNI certificates", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sni-expiry-"));
    try {
      const long = await acmeCa.issue([HOST], 20);
      const short = await acmeCa.issue(["mail.a.test"], 3);
      writeFileSync(join(dir, "mail.crt"), long.chainPem);
      const longAt = new Date(new X509Certificate(long.chainPem).validTo).getTime();
      expect(await mailTlsNotAfter(join(dir, "mail.crt"))).toBe(longAt);
      writeFileSync(join(dir, "sni-0123456789abcdef.crt"), short.chainPem);
      expect(await mailTlsNotAfter(join(dir, "mail.crt"))).toBe(
        new Date(new X509Certificate(short.chainPem).validTo).getTime(),
      );
      expect(await mailTlsNotAfter(join(dir, "none.crt"))).toBeGreaterThan(0); // the SNI one alone
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
