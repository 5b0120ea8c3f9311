// The listener probe against small local servers on port 0 (the real daemons are in
// test/integration/fault-reload.test.ts): it passes only on the greeting plus a handshake with the
// exact certificate, and says in one line what a client met otherwise.
import { X509Certificate } from "node:crypto";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { TLSSocket, createSecureContext } from "node:tls";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { probeListener, type Listener } from "../../agent/mail/listener-probes.ts";
import { createTestTls, type TestTls } from "../helpers/mail-tls.ts";

let served: TestTls;
let other: TestTls;
const servers: Server[] = [];

beforeAll(async () => {
  served = await createTestTls("mail.probe.test", "127.0.0.1");
  other = await createTestTls("mail.probe.test", "127.0.0.1");
}, 30_000);

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

const fingerprint = (t: TestTls): string => new X509Certificate(t.certChainPem).fingerprint256;

/** An IMAP-like server: greets, answers STARTTLS, then speaks TLS with `tls`'s certificate. */
async function imapServer(o: { tls: TestTls; greeting?: string; implicit?: boolean }): Promise<number> {
  const context = createSecureContext({ cert: o.tls.certChainPem, key: o.tls.keyPem });
  const secure = (s: Socket): TLSSocket => {
    const t = new TLSSocket(s, { isServer: true, secureContext: context });
    t.on("error", () => undefined);
    return t;
  };
  const server = createServer((s) => {
    s.on("error", () => undefined);
    if (o.implicit) return void secure(s).write(`${o.greeting ?? "* OK ready"}\r\n`);
    s.write(`${o.greeting ?? "* OK ready"}\r\n`);
    s.once("data", () => {
      s.write("a OK begin TLS\r\n");
      secure(s);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

const imap = (port: number, tls: "starttls" | "implicit" = "starttls"): Listener => ({
  daemon: "dovecot",
  name: tls === "implicit" ? "imaps" : "imap",
  port,
  protocol: "imap",
  tls,
});

describe("probeListener", () => {
  it("passes on the greeting and a STARTTLS or implicit handshake with the configured certificate", async () => {
    expect(await probeListener("127.0.0.1", imap(await imapServer({ tls: served })), fingerprint(served))).toBe(
      undefined,
    );
    const implicit = await imapServer({ tls: served, implicit: true });
    expect(await probeListener("127.0.0.1", imap(implicit, "implicit"), fingerprint(served))).toBe(undefined);
  });

  it("names another certificate, a refusing greeting, a plain-text squatter and a closed port", async () => {
    const port = await imapServer({ tls: other });
    expect(await probeListener("127.0.0.1", imap(port), fingerprint(served))).toBe(
      `imap on 127.0.0.1:${port}: presents certificate ${fingerprint(other)}, not the configured ${fingerprint(served)}`,
    );
    const bye = await imapServer({ tls: served, greeting: "* BYE too many connections" });
    expect(await probeListener("127.0.0.1", imap(bye), fingerprint(served))).toBe(
      `imap on 127.0.0.1:${bye}: answered "* BYE too many connections" to the greeting`,
    );
    const squatter = createServer((s) => s.end("holder: not a mail daemon\r\n"));
    servers.push(squatter);
    await new Promise<void>((r) => squatter.listen(0, "127.0.0.1", r));
    const held = (squatter.address() as AddressInfo).port;
    const tlsProblem = await probeListener("127.0.0.1", imap(held, "implicit"), fingerprint(served));
    expect(tlsProblem).toMatch(new RegExp(`^imaps on 127\\.0\\.0\\.1:${held}: `));
    expect(tlsProblem).not.toMatch(/\n/);
    expect(await probeListener("127.0.0.1", imap(held), fingerprint(served))).toMatch(/connection closed/);
    squatter.close();
    servers.pop();
    await new Promise((r) => setTimeout(r, 0));
    expect(await probeListener("127.0.0.1", imap(held), fingerprint(served))).toBe(
      `imap on 127.0.0.1:${held}: connection refused`,
    );
  });
});
