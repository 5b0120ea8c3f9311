// The agent's HTTPS listener (issue 15, "served, not only published"): MTA-STS fetched and parsed
// by mailauth's independent MTA-STS code over real HTTPS with SNI, autoconfig and autodiscover
// parsed with a real XML parser, the certificate chosen per name, the testing → enforce change of
// the policy (and its id), bad clients (huge bodies, slowloris, a stalled handshake) that end only
// their own connection, and a restarted agent serving again from its state file.
import { X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { connect as tcpConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect, getCACertificates, setDefaultCACertificates } from "node:tls";
import { create } from "@bufbuild/protobuf";
import { XMLParser } from "fast-xml-parser";
import { getPolicy, validateMx } from "mailauth/lib/mta-sts.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema, type DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import { waitUntil } from "../../agent/process.ts";
import { createServedWeb, type ServedWeb } from "../../agent/web/web-host.ts";
import { certMapOf, createContextChooser } from "../../agent/web/cert-map.ts";
import { siteOf } from "../../agent/web/served-site.ts";
import { startWebServer } from "../../agent/web/web-server.ts";
import { mtaStsId } from "../../controller/dns/mail-records.ts";
import { mtaStsPolicy, type MtaStsMode } from "../../controller/dns/mta-sts.ts";
import { createTestCa, type TestCa } from "../helpers/mail-tls.ts";
import { createTestNetns, type TestNetns } from "../helpers/netns.ts";

const canRun = process.getuid?.() === 0;
const MAIL_HOST = "mail.vnode.test";
const A = "a-served.test"; // MTA-STS and client settings
const B = "b-served.test"; // client settings only

let ns: TestNetns;
let ca: TestCa;
let root: string;
let web: ServedWeb;
let mailPair: { chainPem: string; keyPem: string };
let aPair: { chainPem: string; keyPem: string };
let defaultCas: string[];
const opened: Socket[] = [];
/** Tight limits so the slow clients are ended within a second or two (the production ones are 10 s). */
const LIMITS = {
  headersMs: 1_000,
  requestMs: 2_000,
  handshakeMs: 1_000,
  checkEveryMs: 200,
  maxPerAddress: 16,
  maxConnections: 30,
};

function stateFor(mode: MtaStsMode, generation = 1n): DesiredState {
  return create(DesiredStateSchema, {
    generation,
    settings: { mailHostname: MAIL_HOST, webListen: `${ns.hostAddress}:443` },
    tls: { certificateChainPem: mailPair.chainPem, privateKeyPem: mailPair.keyPem },
    certificates: [
      {
        names: [`mta-sts.${A}`, `autoconfig.${A}`, `autodiscover.${A}`],
        certificateChainPem: aPair.chainPem,
        privateKeyPem: aPair.keyPem,
        issuer: "acme",
      },
    ],
    served: [
      { domain: A, mtaStsPolicy: mtaStsPolicy(MAIL_HOST, mode), mailHost: MAIL_HOST },
      { domain: B, mtaStsPolicy: "", mailHost: MAIL_HOST },
    ],
  });
}

async function serve(state: DesiredState): Promise<void> {
  await (await web.prepare(state)).commit();
}

interface Reply {
  status: number;
  type: string;
  body: string;
  /** DNS names of the certificate the server presented. */
  names: string;
}

function fetchHttps(o: {
  servername: string;
  path: string;
  method?: string;
  body?: string;
  /** Source address (default: the kernel's choice, the veth's host address). */
  localAddress?: string;
}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: ns.hostAddress,
        port: 443,
        servername: o.servername,
        headers: { host: o.servername, ...(o.body ? { "content-type": "text/xml" } : {}) },
        path: o.path,
        method: o.method ?? "GET",
        ca: ca.caPem,
        agent: false,
        timeout: 10_000,
        ...(o.localAddress ? { localAddress: o.localAddress } : {}),
      },
      (res) => {
        const names = (
          res.socket as unknown as { getPeerCertificate(): { subjectaltname?: string } }
        ).getPeerCertificate().subjectaltname;
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body, names: names ?? "" }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.end(o.body);
  });
}

/** DNS for mailauth: the TXT record mail:dns publishes, and the listener's address. */
function resolverFor(policyText: string) {
  return async (name: string, type: string): Promise<string[][] | string[]> => {
    if (name === `_mta-sts.${A}` && type === "TXT") return [[`v=STSv1; id=${mtaStsId(policyText)}`]];
    if (name === `mta-sts.${A}` && type === "A") return [ns.hostAddress];
    throw Object.assign(new Error(`no ${type} for ${name}`), { code: "ENOTFOUND" });
  };
}

const xml = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "@", parseTagValue: false });

describe.skipIf(!canRun)("agent HTTPS listener: MTA-STS, autoconfig, autodiscover", () => {
  beforeAll(async () => {
    ns = await createTestNetns("web");
    ca = await createTestCa();
    mailPair = await ca.issue([MAIL_HOST]);
    aPair = await ca.issue([`mta-sts.${A}`, `autoconfig.${A}`, `autodiscover.${A}`]);
    root = mkdtempSync(join(tmpdir(), "web-served-"));
    web = createServedWeb({ paths: createVnodePaths(root), limits: LIMITS });
    // mailauth trusts the default store, as a real sender would: our test CA joins it.
    defaultCas = getCACertificates("default");
    setDefaultCACertificates([...defaultCas, ca.caPem]);
    await serve(stateFor("testing"));
  });

  afterAll(async () => {
    for (const s of opened) s.destroy();
    if (defaultCas) setDefaultCACertificates(defaultCas);
    await web?.close();
    await ns?.destroy();
    ca?.dispose();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("mailauth fetches the policy over HTTPS with SNI (strict), testing first, then enforce with a new id", async () => {
    await serve(stateFor("testing"));
    const testing = mtaStsPolicy(MAIL_HOST, "testing");
    const first = await getPolicy(A, null, { resolver: resolverFor(testing), strict: true, timeout: 10_000 });
    expect(first.status).toBe("found");
    expect(first.warnings ?? []).toEqual([]);
    expect(first.policy).toMatchObject({ id: mtaStsId(testing), mode: "testing", mx: [MAIL_HOST], maxAge: 86_400 });
    expect(validateMx(MAIL_HOST, first.policy).valid).toBe(true);
    expect(validateMx("mx.elsewhere.test", first.policy).valid).toBe(false);

    // The MX now presents a publicly trusted certificate: the controller sends enforce.
    await serve(stateFor("enforce", 2n));
    const enforce = mtaStsPolicy(MAIL_HOST, "enforce");
    expect(mtaStsId(enforce)).not.toBe(mtaStsId(testing));
    const second = await getPolicy(A, first.policy, { resolver: resolverFor(enforce), strict: true, timeout: 10_000 });
    expect(second.status).toBe("found");
    expect(second.policy).toMatchObject({ id: mtaStsId(enforce), mode: "enforce", mx: [MAIL_HOST], maxAge: 604_800 });
    await serve(stateFor("testing", 3n));
  });

  it("chooses the certificate by SNI name; other names get the mail certificate", async () => {
    const a = await fetchHttps({ servername: `mta-sts.${A}`, path: "/.well-known/mta-sts.txt" });
    expect(a.names).toContain(`DNS:mta-sts.${A}`);
    expect(a.type).toMatch(/^text\/plain/);
    expect(a.body).toContain("version: STSv1");
    // b has no certificate of its own: the mail host's is presented (verification by name is
    // the client's business, so check the presented names without it).
    const names = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect(
        { host: ns.hostAddress, port: 443, servername: `autoconfig.${B}`, rejectUnauthorized: false },
        () => {
          resolve(new X509Certificate(s.getPeerX509Certificate()?.raw ?? Buffer.alloc(0)).subjectAltName ?? "");
          s.destroy();
        },
      );
      s.once("error", reject);
    });
    expect(names).toBe(`DNS:${MAIL_HOST}`);
  });

  it("404 for a domain without MTA-STS, an unknown domain, an unknown path", async () => {
    const ask = (servername: string, path: string) => fetchHttps({ servername, path }).then((r) => r.status);
    // The mail certificate does not name these hosts: ask with A's certificate name, other Host.
    expect(await ask(`mta-sts.${A}`, "/.well-known/mta-sts.txt")).toBe(200);
    expect(await ask(`mta-sts.${A}`, "/nothing-here")).toBe(404);
    const other = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: ns.hostAddress,
          port: 443,
          servername: `mta-sts.${A}`,
          ca: ca.caPem,
          agent: false,
          path: "/.well-known/mta-sts.txt",
          headers: { host: `mta-sts.${B}` },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(other).toBe(404);
    const unknown = await fetchHttps({
      servername: `autodiscover.${A}`,
      path: "/autodiscover/autodiscover.xml",
      method: "POST",
      body: autodiscoverRequest("someone@unknown-domain.test"),
    });
    expect(unknown.status).toBe(404);
  });

  it("autoconfig (both paths) parses as Thunderbird's config-v1.1 with IMAP 993 SSL and SMTP 465 SSL / 587 STARTTLS", async () => {
    for (const path of [
      "/mail/config-v1.1.xml",
      `/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=alice%40${A}`,
    ]) {
      const r = await fetchHttps({ servername: `autoconfig.${A}`, path });
      expect(r.status).toBe(200);
      expect(r.type).toMatch(/^application\/xml/);
      const doc = xml.parse(r.body) as {
        clientConfig: {
          "@version": string;
          emailProvider: {
            "@id": string;
            domain: string;
            incomingServer: Record<string, string>;
            outgoingServer: Array<Record<string, string>>;
          };
        };
      };
      const p = doc.clientConfig.emailProvider;
      expect(doc.clientConfig["@version"]).toBe("1.1");
      expect(p["@id"]).toBe(A);
      expect(p.domain).toBe(A);
      expect(p.incomingServer).toMatchObject({
        "@type": "imap",
        hostname: MAIL_HOST,
        port: "993",
        socketType: "SSL",
        username: "%EMAILADDRESS%",
      });
      expect(p.outgoingServer.map((s) => [s["@type"], s.hostname, s.port, s.socketType, s.username])).toEqual([
        ["smtp", MAIL_HOST, "465", "SSL", "%EMAILADDRESS%"],
        ["smtp", MAIL_HOST, "587", "STARTTLS", "%EMAILADDRESS%"],
      ]);
    }
  });

  it("autodiscover answers a POST with IMAP and SMTP Protocol entries for the address asked about", async () => {
    const r = await fetchHttps({
      servername: `autodiscover.${A}`,
      path: "/autodiscover/autodiscover.xml",
      method: "POST",
      body: autodiscoverRequest(`bob@${A}`),
    });
    expect(r.status).toBe(200);
    const doc = xml.parse(r.body) as {
      Autodiscover: {
        Response: { Account: { AccountType: string; Action: string; Protocol: Array<Record<string, string>> } };
      };
    };
    const account = doc.Autodiscover.Response.Account;
    expect(account.AccountType).toBe("email");
    expect(account.Action).toBe("settings");
    expect(account.Protocol.map((p) => [p.Type, p.Server, p.Port, p.SSL, p.LoginName])).toEqual([
      ["IMAP", MAIL_HOST, "993", "on", `bob@${A}`],
      ["SMTP", MAIL_HOST, "465", "on", `bob@${A}`],
    ]);
    const get = await fetchHttps({ servername: `autodiscover.${A}`, path: "/autodiscover/autodiscover.xml" });
    expect(get.status).toBe(404);
  });

  it("a huge body, a chunked flood, slowloris headers and a stalled handshake end only their own connections", async () => {
    const big = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: ns.hostAddress,
          port: 443,
          servername: `autodiscover.${A}`,
          ca: ca.caPem,
          agent: false,
          method: "POST",
          path: "/autodiscover/autodiscover.xml",
          headers: { host: `autodiscover.${A}`, "content-length": String(50 * 1024 * 1024) },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.write("x".repeat(1024)); // then nothing: the server must answer without the rest
    });
    expect(big).toBe(413);

    // A chunked body past the limit: the server drops the connection.
    const chunked = await new Promise<string>((resolve) => {
      const req = request({
        host: ns.hostAddress,
        port: 443,
        servername: `autodiscover.${A}`,
        ca: ca.caPem,
        agent: false,
        method: "POST",
        path: "/autodiscover/autodiscover.xml",
        headers: { host: `autodiscover.${A}`, "transfer-encoding": "chunked" },
      });
      req.on("response", (res) => resolve(`answered ${res.statusCode}`));
      req.on("error", (e) => resolve(`dropped: ${e.message}`));
      const block = "y".repeat(8 * 1024);
      for (let i = 0; i < 8; i++) req.write(block);
    });
    expect(chunked).toMatch(/^dropped/);

    // Slowloris: connections that never finish their headers, and raw TCP that never says hello.
    const closed: boolean[] = [];
    const settled: boolean[] = []; // connected (TLS done / TCP up) or already closed
    for (let i = 0; i < 20; i++) {
      const k = closed.push(false) - 1;
      settled.push(false);
      const s = tlsConnect({ host: ns.hostAddress, port: 443, servername: `mta-sts.${A}`, ca: ca.caPem }, () => {
        settled[k] = true;
        s.write(`GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.${A}\r\n`);
      });
      s.on("error", () => undefined).on("close", () => (closed[k] = settled[k] = true));
      opened.push(s as unknown as Socket);
    }
    for (let i = 0; i < 20; i++) {
      const k = closed.push(false) - 1;
      settled.push(false);
      const s = tcpConnect({ host: ns.hostAddress, port: 443 }, () => (settled[k] = true));
      s.on("error", () => undefined).on("close", () => (closed[k] = settled[k] = true));
      opened.push(s);
    }
    await waitUntil("slow clients connected or refused", 30_000, () => settled.every(Boolean), 20);
    // While they hang, a real client from another address is served.
    const ok = await fetchHttps({
      servername: `mta-sts.${A}`,
      path: "/.well-known/mta-sts.txt",
      localAddress: "127.0.0.1",
    });
    expect(ok.status).toBe(200);
    // The server ends every one of them (its timeouts, not ours; the limit only catches a hang).
    await waitUntil("slow clients closed by the server", 30_000, () => closed.every(Boolean), 100);
    expect(closed.filter(Boolean)).toHaveLength(40);
    const after = await fetchHttps({ servername: `mta-sts.${A}`, path: "/.well-known/mta-sts.txt" });
    expect(after.status).toBe(200);
  });

  it("one address holding sockets open gets its cap, not everyone's places", async () => {
    const map = certMapOf(stateFor("testing"));
    if (!map.fallback) throw new Error("no fallback");
    // Timeouts far off: only the caps decide here (4 per address, 8 in all).
    const server = await startWebServer({
      host: "127.0.0.1",
      port: 0,
      content: { site: siteOf(stateFor("testing")), choose: createContextChooser(map), fallback: map.fallback },
      limits: { maxPerAddress: 4, maxConnections: 8, headersMs: 120_000, requestMs: 120_000, handshakeMs: 120_000 },
    });
    const held: Socket[] = [];
    try {
      const state: Array<"open" | "closed"> = [];
      await Promise.all(
        Array.from(
          { length: 10 },
          (_, k) =>
            new Promise<void>((resolve) => {
              const s = tcpConnect({ host: "127.0.0.1", port: server.port, localAddress: "127.0.0.2" }, () => {
                state[k] = "open";
                resolve();
              });
              s.on("error", () => undefined).on("close", () => (state[k] = "closed"));
              held.push(s);
            }),
        ),
      );
      // The server refuses the 6 beyond the cap as it accepts them.
      await waitUntil("excess connections refused", 30_000, () => state.filter((x) => x === "closed").length === 6, 20);
      const ok = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: "127.0.0.1",
            port: server.port,
            servername: `mta-sts.${A}`,
            ca: ca.caPem,
            agent: false,
            path: "/.well-known/mta-sts.txt",
            headers: { host: `mta-sts.${A}` },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
        req.end();
      });
      expect(ok).toBe(200);
      expect(state.filter((x) => x === "open")).toHaveLength(4);
    } finally {
      for (const s of held) s.destroy();
      await server.close();
    }
  });

  it("a restarted agent serves again from its state file, before any controller speaks", async () => {
    await web.close();
    web = createServedWeb({ paths: createVnodePaths(root), limits: LIMITS });
    await web.restore();
    const r = await fetchHttps({ servername: `mta-sts.${A}`, path: "/.well-known/mta-sts.txt" });
    expect(r.status).toBe(200);
    expect(r.body).toBe(mtaStsPolicy(MAIL_HOST, "testing"));
    const file = join(createVnodePaths(root).stateDir, "web-served.json");
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, "utf8")).toContain("webListen");
  });

  it("the web-server directory alternative: the same answers as files per virtual host, stale hosts removed", async () => {
    const dir = join(root, "www");
    const state = stateFor("testing", 10n);
    if (state.settings) state.settings.webDirectory = dir;
    await serve(state);
    const served = await fetchHttps({ servername: `mta-sts.${A}`, path: "/.well-known/mta-sts.txt" });
    expect(readFileSync(join(dir, `mta-sts.${A}`, ".well-known", "mta-sts.txt"), "utf8")).toBe(served.body);
    const config = await fetchHttps({ servername: `autoconfig.${A}`, path: "/mail/config-v1.1.xml" });
    expect(readFileSync(join(dir, `autoconfig.${A}`, "mail", "config-v1.1.xml"), "utf8")).toBe(config.body);
    expect(readFileSync(join(dir, B, ".well-known", "autoconfig", "mail", "config-v1.1.xml"), "utf8")).toContain(
      `<emailProvider id="${B}">`,
    );
    expect(existsSync(join(dir, `mta-sts.${B}`))).toBe(false); // B has no MTA-STS
    const without = stateFor("testing", 11n);
    if (without.settings) without.settings.webDirectory = dir;
    without.served = without.served.filter((d) => d.domain !== B);
    await serve(without);
    expect(existsSync(join(dir, `autoconfig.${B}`))).toBe(false);
    expect(existsSync(join(dir, `autoconfig.${A}`, "mail", "config-v1.1.xml"))).toBe(true);
    await serve(stateFor("testing", 12n));
  });

  it("a bad certificate in the map refuses the state, naming the field, and changes nothing", async () => {
    const bad = stateFor("testing", 9n);
    const first = bad.certificates[0];
    if (!first) throw new Error("no certificate");
    first.privateKeyPem = mailPair.keyPem; // another leaf's key
    await expect(web.prepare(bad)).rejects.toThrow(/certificates\[0\]\.private_key_pem/);
    const r = await fetchHttps({ servername: `mta-sts.${A}`, path: "/.well-known/mta-sts.txt" });
    expect(r.status).toBe(200);
  });
});

function autodiscoverRequest(email: string): string {
  return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>${email}</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>`;
}
