// ACME HTTP-01 on a real mail vnode (agent, Postfix and Dovecot in a network namespace), for a
// mail host name whose DNS the controller does not control: the controller has no DNS provider
// at all here, so DNS-01 is impossible; the name resolves (in PowerDNS, which only Pebble asks)
// to the namespace's address, where the agent's plain-HTTP listener (`vnode set --http-listen
// IP:80`) answers /.well-known/acme-challenge/<token> with the key authorization the controller
// pushed in the desired state, and Pebble (httpPort 80) validates it from outside the namespace.
// The certificate reaches IMAPS; afterwards the challenge is gone from the state and the listener.
// Without a listener the order is refused before it is placed, naming the setting.
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMailFleet, until, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";
import { pdnsAvailable, startPdns, type Pdns } from "../helpers/pdns.ts";
import { pebbleAvailable, startPebble, type Pebble } from "../helpers/pebble.ts";

const isRoot = process.getuid?.() === 0;

let fleet: MailFleet;
let vn: FleetVnode;
let pdns: Pdns;
let pebble: Pebble;
let root = "";

function acme(): Promise<{ code: number; out: string; err: string }> {
  return fleet.harness.cli([
    "mail:tls",
    "acme",
    vn.name,
    "--challenge",
    "http-01",
    "--server",
    pebble.directoryUrl,
    "--server-ca",
    pebble.serverCaFile,
  ]);
}

/** The issuer of the certificate IMAPS presents, verified against Pebble's root for the host name. */
function servedIssuer(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: vn.ns.nsAddress, port: 993, ca: root, servername: vn.mailHostname });
    socket.once("secureConnect", () => {
      const issuer = String(socket.getPeerCertificate().issuer.CN ?? "");
      socket.destroy();
      resolve(issuer);
    });
    socket.once("error", reject);
  });
}

function httpGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: vn.ns.nsAddress, port: 80, path, headers: { host: vn.mailHostname }, agent: false, timeout: 5000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.end();
  });
}

describe.skipIf(!isRoot || !pdnsAvailable || !pebbleAvailable)("ACME HTTP-01 answered by the agent", () => {
  beforeAll(async () => {
    pdns = await startPdns();
    pebble = await startPebble({ dnsServer: pdns.resolver, validitySeconds: 3600, httpPort: 80 });
    root = await pebble.rootPem();
    // No DNS provider: the controller cannot answer DNS-01 for anything.
    fleet = await startMailFleet(["ah1"], "acmeh", { harness: { certificateCheckMs: 0 } });
    vn = fleet.vnodes[0] as FleetVnode;
    // Only Pebble asks PowerDNS: the mail host name points at the namespace's address.
    const zone = vn.mailHostname.split(".").slice(1).join(".");
    await pdns.createZone(zone);
    const added = await pdns.api("PATCH", `/zones/${zone}.`, {
      rrsets: [
        {
          name: `${vn.mailHostname}.`,
          type: "A",
          ttl: 60,
          changetype: "REPLACE",
          records: [{ content: vn.ns.nsAddress, disabled: false }],
        },
      ],
    });
    expect(added.status).toBe(204);
  }, 300_000);

  afterAll(async () => {
    await fleet?.close();
    await pebble?.stop();
    await pdns?.stop();
  });

  it("refuses HTTP-01 without a listener, then issues through the agent's listener once set", async () => {
    const refused = await acme();
    expect(refused.code).toBe(4);
    expect(refused.err).toContain(`vnode ${vn.name} has no HTTP listener`);
    expect(refused.err).toContain("--http-listen");

    const set = await fleet.harness.cli(["vnode", "set", vn.name, "--http-listen", `${vn.ns.nsAddress}:80`]);
    expect(set.code, set.err).toBe(0);
    // The listener is up once the state is applied: an unknown token is a 404.
    await until(
      async () =>
        (await httpGet("/.well-known/acme-challenge/unknown-token").catch(() => undefined))?.status === 404
          ? true
          : undefined,
      30_000,
      "the agent's HTTP-01 listener",
    );

    const r = await acme();
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`ACME certificate for ${vn.mailHostname}`);
    const issuer = await until(
      async () => {
        const now = await servedIssuer().catch(() => "");
        return /^Pebble Intermediate CA/.test(now) ? now : undefined;
      },
      30_000,
      "the ACME certificate on 993",
    );
    expect(issuer).toMatch(/^Pebble Intermediate CA/);
    // Pebble validated over HTTP-01 against the agent, from outside the namespace…
    const log = readFileSync(pebble.logFile, "utf8");
    expect(log).toContain(`Attempting to validate w/ HTTP: http://${vn.mailHostname}:80/.well-known/acme-challenge/`);
    expect(log).toMatch(/set VALID by completed challenge/);
    // …and the challenge is out of the state again.
    const rows = await fleet.harness.db
      .em()
      .fork()
      .getConnection()
      .execute<Array<{ n: string | number }>>("select count(*) as n from acme_http_challenges");
    expect(Number(rows[0]?.n)).toBe(0);
    const show = JSON.parse((await fleet.harness.cli(["mail:tls", "show", vn.name, "--json"])).out) as Array<{
      source: string;
      acme: string;
    }>;
    expect(show[0]).toMatchObject({ source: "acme", acme: "valid" });
    // Nothing else is served on it.
    expect((await httpGet("/")).status).toBe(404);
  }, 180_000);
});
