// Dovecot's auth as Postfix's smtpd meets it (agent/mail/auth-ready.ts) and the words that tell a
// passing auth outage from a broken config (agent/mail/sasl-outage.ts), against unix sockets that
// answer as Dovecot's auth does: late, partly, from another process, or not at all.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { authHandshake, waitNewAuth } from "../../agent/mail/auth-ready.ts";
import { onlyNoMechanisms, passingSaslOutage, postfixThrottleSeconds } from "../../agent/mail/sasl-outage.ts";

const handshake = (spid: number): string =>
  `VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t${spid}\nCUID\t1\nCOOKIE\tab\nDONE\n`;

const dirs: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function socketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), "nsm-auth-ready-"));
  dirs.push(dir);
  return join(dir, "auth-postfix");
}

async function serve(path: string, onConnection: (socket: Socket) => void): Promise<Server> {
  const server = createServer((socket) => {
    // The client hangs up as soon as it has its answer: a late write must not fail the test.
    socket.on("error", () => undefined);
    socket.resume();
    onConnection(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

describe("dovecot auth handshake", () => {
  it("a full handshake, even in pieces, names the process and its mechanisms", async () => {
    const path = socketPath();
    await serve(path, (socket) => {
      const text = handshake(4242);
      socket.write(text.slice(0, 20));
      setTimeout(() => socket.destroyed || socket.write(text.slice(20)), 50);
    });
    expect(await authHandshake(path)).toEqual({ spid: "4242", mechanisms: ["PLAIN", "LOGIN"] });
  });

  it("no socket, a reset, a handshake without DONE, mechanisms or SPID is no answer", async () => {
    expect(await authHandshake(socketPath(), 300)).toBeUndefined();
    const closes = socketPath();
    await serve(closes, (socket) => socket.destroy());
    expect(await authHandshake(closes, 300)).toBeUndefined();
    const partial = socketPath();
    await serve(partial, (socket) => socket.write("VERSION\t1\t2\nMECH\tPLAIN\n"));
    expect(await authHandshake(partial, 300)).toBeUndefined();
    const noMech = socketPath();
    await serve(noMech, (socket) => socket.write("VERSION\t1\t2\nSPID\t7\nDONE\n"));
    expect(await authHandshake(noMech, 300)).toBeUndefined();
    const noSpid = socketPath();
    await serve(noSpid, (socket) => socket.write("VERSION\t1\t2\nMECH\tPLAIN\nDONE\n"));
    expect(await authHandshake(noSpid, 300)).toBeUndefined();
  });

  it("after a reload only another process's answer counts: the old one answers until the swap", async () => {
    const path = socketPath();
    let answers = 0;
    let spid = 100;
    await serve(path, (socket) => {
      answers += 1;
      // The old process answers three more times, then the new one.
      if (answers === 4) spid = 200;
      socket.write(handshake(spid));
    });
    expect(await waitNewAuth(path, "100", { gapMs: 10 })).toBe(true);
    expect(answers).toBe(4);
  });

  it("waits through a gap with no socket, and gives up at the deadline on the old process", async () => {
    const path = socketPath();
    let connections = 0;
    setTimeout(
      () =>
        void serve(path, (socket) => {
          connections += 1;
          socket.write(handshake(300));
        }),
      300,
    );
    expect(await waitNewAuth(path, "100", { gapMs: 20 })).toBe(true);
    expect(connections).toBe(1);
    expect(await waitNewAuth(path, "300", { deadlineMs: 300, gapMs: 20 })).toBe(false);
    let asked = 0;
    const giveUp = (): boolean => ++asked === 2;
    expect(await waitNewAuth(path, "300", { deadlineMs: 60_000, gapMs: 20, giveUp })).toBe(false);
    expect(asked).toBe(2);
  });
});

describe("a passing SASL outage, by Postfix's words", () => {
  const noMech = "postfix/submission/smtpd: fatal: no SASL authentication mechanisms";

  it("only smtpd's 'no SASL authentication mechanisms' lines qualify", () => {
    expect(onlyNoMechanisms([noMech, "postfix/smtps/smtpd: fatal: no SASL authentication mechanisms"])).toBe(true);
    expect(onlyNoMechanisms([])).toBe(false);
    expect(onlyNoMechanisms([noMech, "postfix/master: fatal: bind 127.0.0.1 port 25: Address already in use"])).toBe(
      false,
    );
    expect(onlyNoMechanisms(["postfix/smtps/smtpd: warning: TLS library problem: bad certificate"])).toBe(false);
  });

  it("is passing only while Dovecot's auth answers", async () => {
    const path = socketPath();
    expect(await passingSaslOutage([noMech], path)).toBe(false);
    await serve(path, (socket) => socket.write(handshake(9)));
    expect(await passingSaslOutage([noMech], path)).toBe(true);
    expect(await passingSaslOutage(["postfix/smtpd: error: open database x.db"], path)).toBe(false);
  });

  it("reads service_throttle_time in Postfix's units, 60 s when unset", () => {
    expect(postfixThrottleSeconds(undefined)).toBe(60);
    expect(postfixThrottleSeconds("myhostname = a\n")).toBe(60);
    expect(postfixThrottleSeconds("service_throttle_time = 5s\n")).toBe(5);
    expect(postfixThrottleSeconds("service_throttle_time = 2m\n")).toBe(120);
    expect(postfixThrottleSeconds("service_throttle_time = 30\n")).toBe(30);
  });
});
