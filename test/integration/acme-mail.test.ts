// ACME certificates on a real mail vnode (agent, Postfix and Dovecot in a network namespace),
// from a real Pebble that validates DNS-01 against a real PowerDNS. `mail:tls acme` gets the
// certificate and it reaches the vnode: IMAPS and `mail:test-smtp --ca <Pebble's root>` verify the
// chain and the mail host name. Pebble's certificates live 90 s here, so the controller's ACME
// sweep renews at 2/3 of that (60 s) on its own. An SMTP session and an IMAP IDLE session opened
// before the renewal are both still answered after the new certificate is served: Postfix's
// reload keeps sessions, and Dovecot's does with `shutdown_clients = no` (rendered by the agent;
// with Dovecot 2.3's default the reload ended the IDLE session with "* BYE Server shutting
// down."). A new connection is served the new certificate.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:https";
import { connect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normalizeSerialHex } from "../../common/pki/serial.ts";
import { startMailFleet, until, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";
import { smtpConnect } from "../helpers/mail-smtp.ts";
import { pdnsAvailable, startPdns, type Pdns } from "../helpers/pdns.ts";
import { pebbleAvailable, startPebble, type Pebble } from "../helpers/pebble.ts";

const isRoot = process.getuid?.() === 0;
const PASS = "Acme-alice-pass-1";
const VALIDITY = 90;

let fleet: MailFleet;
let vn: FleetVnode;
let pdns: Pdns;
let pebble: Pebble;
let root = "";
let dir = "";
let rootFile = "";
let alice = "";

interface Served {
  serial: string;
  issuer: string;
  notAfter: number;
}

/** The certificate IMAPS presents to a new connection, verified against Pebble's root for the host name. */
function served(): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: vn.ns.nsAddress, port: 993, ca: root, servername: vn.mailHostname });
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve({
        serial: normalizeSerialHex(cert.serialNumber),
        issuer: String(cert.issuer.CN ?? ""),
        notAfter: Date.parse(cert.valid_to),
      });
    });
    socket.once("error", reject);
  });
}

/** A line-reading IMAP session over implicit TLS that trusts only Pebble's root. */
async function imapSession(): Promise<{
  socket: TLSSocket;
  expect(tagOrPlus: RegExp, timeoutMs?: number): Promise<string>;
  send(line: string): void;
}> {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({ host: vn.ns.nsAddress, port: 993, ca: root, servername: vn.mailHostname }, () => resolve(s));
    s.once("error", reject);
  });
  let buffer = "";
  let wake: (() => void) | undefined;
  socket.setEncoding("latin1");
  socket.on("data", (d: string) => {
    buffer += d;
    wake?.();
  });
  socket.on("error", () => wake?.());
  socket.on("close", () => wake?.());
  return {
    socket,
    send: (line) => void socket.write(`${line}\r\n`),
    expect: (pattern, timeoutMs = 15_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`IMAP: no ${String(pattern)}; got ${JSON.stringify(buffer)}`)),
          timeoutMs,
        );
        const check = (): void => {
          const lines = buffer.split("\r\n");
          const index = lines.findIndex((l) => pattern.test(l));
          if (index >= 0) {
            clearTimeout(timer);
            wake = undefined;
            const line = lines[index] ?? "";
            buffer = lines.slice(index + 1).join("\r\n");
            resolve(line);
          } else if (socket.destroyed) {
            clearTimeout(timer);
            reject(new Error(`IMAP connection closed; got ${JSON.stringify(buffer)}`));
          }
        };
        wake = check;
        check();
      }),
  };
}

/** GET on the agent's HTTPS listener with SNI `host`, verified against Pebble's root for that name. */
function httpsGet(host: string, path: string): Promise<{ status: number; body: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: vn.ns.nsAddress,
        port: 443,
        servername: host,
        ca: root,
        agent: false,
        path,
        headers: { host },
        timeout: 5_000,
      },
      (res) => {
        const issuer = String((res.socket as TLSSocket).getPeerCertificate().issuer.CN ?? "");
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, issuer }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.end();
  });
}

async function issue(): Promise<Served> {
  const r = await fleet.harness.cli([
    "mail:tls",
    "acme",
    vn.name,
    "--server",
    pebble.directoryUrl,
    "--server-ca",
    pebble.serverCaFile,
    "--email",
    `hostmaster@${vn.domain}`,
  ]);
  expect(r.code, r.err).toBe(0);
  expect(r.out).toContain(`live on ${vn.name}`);
  const want = /ACME certificate for \S+ from (.+), valid until/.exec(r.out)?.[1];
  return until(
    async () => {
      const now = await served();
      return now.issuer === want ? now : undefined;
    },
    30_000,
    "the ACME certificate on 993",
  );
}

describe.skipIf(!isRoot || !pdnsAvailable || !pebbleAvailable)("ACME certificates on a real mail vnode", () => {
  beforeAll(async () => {
    pdns = await startPdns();
    await pdns.createZone("acm1.test");
    pebble = await startPebble({ dnsServer: pdns.resolver, validitySeconds: VALIDITY });
    root = await pebble.rootPem();
    dir = mkdtempSync(join(tmpdir(), "nsm-acme-mail-"));
    rootFile = join(dir, "pebble-root.pem");
    writeFileSync(rootFile, root);
    fleet = await startMailFleet(["acm1"], "acme", {
      harness: {
        certificateCheckMs: 1000,
        config: { dns: { url: pdns.url, apiKey: pdns.apiKey }, acmeRetrySeconds: 5 },
      },
    });
    vn = fleet.vnodes[0] as FleetVnode;
    alice = `alice@${vn.domain}`;
    const added = await fleet.harness.cli(["addvmail", vn.name, alice, "--password-stdin"], `${PASS}\n`);
    expect(added.code, added.err).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await fleet?.close();
    await pebble?.stop();
    await pdns?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("mail:tls acme reaches the vnode: IMAPS and mail:test-smtp verify the chain against Pebble's root", async () => {
    const now = await issue();
    expect(now.issuer).toMatch(/^Pebble Intermediate CA/);
    const r = await fleet.harness.cli(
      ["mail:test-smtp", vn.name, "--port", "587", "--auth", alice, "--password-stdin", "--ca", rootFile, "--json"],
      `${PASS}\n`,
    );
    const result = JSON.parse(r.out || "{}") as {
      steps?: Array<{ name: string; ok: boolean; facts: Record<string, string> }>;
    };
    expect(r.code, r.err + r.out).toBe(0);
    const tls = result.steps?.find((s) => s.name === "tls");
    expect(tls?.facts).toMatchObject({ nameMatches: "true", trusted: "true" });
    expect(tls?.facts["subjectAltName"]).toContain(vn.mailHostname);
    // The controller's CA does not vouch for it any more: the same test trusting only that CA fails at TLS.
    const untrusted = await fleet.harness.cli(["mail:test-smtp", vn.name, "--port", "587", "--json"]);
    expect(untrusted.code).not.toBe(0);
  }, 120_000);

  it("the sweep renews at 2/3 of the lifetime; an SMTP session and an IMAP IDLE session stay up", async () => {
    const first = await issue();
    const imap = await imapSession();
    await imap.expect(/^\* OK/);
    imap.send(`a LOGIN ${alice} ${PASS}`);
    await imap.expect(/^a OK/);
    imap.send("b SELECT INBOX");
    await imap.expect(/^b OK/);
    imap.send("c IDLE");
    await imap.expect(/^\+ /);
    const smtp = await smtpConnect({
      host: vn.ns.nsAddress,
      port: 587,
      ca: root,
      servername: vn.mailHostname,
    });
    try {
      expect(smtp.greeting.code).toBe(220);
      expect((await smtp.cmd("EHLO client.sender.test")).code).toBe(250);
      expect((await smtp.startTls()).code).toBe(220);
      expect((await smtp.cmd("EHLO client.sender.test")).code).toBe(250);

      // Nothing but the clock: the sweep (every second) finds the certificate due at 2/3 of 90 s.
      const next = await until(
        async () => {
          const now = await served();
          return now.serial !== first.serial ? now : undefined;
        },
        150_000,
        "a renewed certificate on 993",
      );
      expect(next.issuer).toMatch(/^Pebble Intermediate CA/);
      expect(next.notAfter).toBeGreaterThan(first.notAfter);
      // Renewed before the old one expired.
      expect(Date.now()).toBeLessThan(first.notAfter);
      const renewals = await fleet.harness.db
        .em()
        .fork()
        .getConnection()
        .execute<Array<{ result: string }>>(
          "select result from command_log where command = 'mail:tls acme-renew' and vnode_name = ?",
          [vn.name],
        );
      expect(renewals.filter((r) => r.result === "ok").length).toBeGreaterThanOrEqual(1);

      // The SMTP session opened before the swap still answers.
      expect((await smtp.cmd("NOOP")).code).toBe(250);
      expect((await smtp.cmd("QUIT")).code).toBe(221);
      // The IDLE session is still there: it ends IDLE and answers a command on the same connection
      // (and TLS session), after the reload that swapped the certificate.
      expect(imap.socket.destroyed).toBe(false);
      imap.send("DONE");
      await imap.expect(/^c OK /);
      imap.send("d NOOP");
      await imap.expect(/^d OK /);
      // A new connection verifies the new certificate and logs in.
      const again = await imapSession();
      try {
        await again.expect(/^\* OK/);
        expect(normalizeSerialHex(again.socket.getPeerCertificate().serialNumber)).toBe(next.serial);
        again.send(`a LOGIN ${alice} ${PASS}`);
        await again.expect(/^a OK/);
      } finally {
        again.socket.destroy();
      }
    } finally {
      smtp.close();
      imap.socket.destroy();
    }
  }, 240_000);

  it("a domain's ACME certificate is served by SNI on the HTTPS listener; MTA-STS enforces once the MX's is ACME's", async () => {
    await issue();
    const h = fleet.harness;
    expect((await h.cli(["vnode", "set", vn.name, "--web-listen", `${vn.ns.nsAddress}:443`])).code).toBe(0);
    const dns = await h.cli(["mail:dns", vn.name, vn.domain, "--mta-sts"]);
    expect(dns.code, dns.err).toBe(0);
    const r = await h.cli([
      "mail:tls",
      "acme",
      vn.name,
      "--domain",
      vn.domain,
      "--server",
      pebble.directoryUrl,
      "--server-ca",
      pebble.serverCaFile,
    ]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(
      `ACME certificate for mta-sts.${vn.domain}, autoconfig.${vn.domain}, autodiscover.${vn.domain}`,
    );
    // Verified against Pebble's root for each name (https.request checks the name it was given).
    const policy = await until(
      async () => {
        const got = await httpsGet(`mta-sts.${vn.domain}`, "/.well-known/mta-sts.txt");
        return got.status === 200 && got.body.includes("mode: enforce") ? got : undefined;
      },
      60_000,
      "an enforcing MTA-STS policy over an ACME certificate",
    );
    expect(policy.issuer).toMatch(/^Pebble Intermediate CA/);
    expect(policy.body).toMatch(
      new RegExp(`^version: STSv1\nmode: enforce\nmx: ${vn.mailHostname.replace(/\./g, "\\.")}\nmax_age: \\d+\n$`),
    );
    const config = await httpsGet(`autoconfig.${vn.domain}`, "/mail/config-v1.1.xml");
    expect(config.status).toBe(200);
    expect(config.body).toContain(`<emailProvider id="${vn.domain}">`);
  }, 180_000);
});
