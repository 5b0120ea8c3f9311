// Dovecot's other doors on a real vnode (namespace + private root, as in mail-vnode.test.ts):
// POP3 on 110 (STARTTLS; credentials refused before it) and 995 (implicit TLS) retrieve a message
// delivered over SMTP → LMTP; ManageSieve on 4190 (STARTTLS, AUTHENTICATE PLAIN, PUTSCRIPT,
// SETACTIVE) installs a script that files the next delivery into a folder. Tiny clients of our
// own (test/helpers/mail-pop3.ts, mail-managesieve.ts) so every reply can be checked.
import { create } from "@bufbuild/protobuf";
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { inFolder, waitDelivered } from "../helpers/mail-maildir.ts";
import { sieveConnect } from "../helpers/mail-managesieve.ts";
import { pop3Connect } from "../helpers/mail-pop3.ts";
import { buildMessage, sendMail } from "../helpers/mail-smtp.ts";
import { MAIL_HOSTNAME, createMailVnode, hashPassword, type MailVnode } from "../helpers/mail-vnode.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");
const D = "example.test";
const PASS = { pop: "pop-Secret-1", sieve: "sieve-Secret-2" };
const SCRIPT =
  'require ["fileinto", "mailbox"];\nif header :contains "subject" "[reports]" {\n  fileinto :create "Reports";\n  stop;\n}\n';

let v: MailVnode;
const timings: Record<string, number> = {};
const target = (port: 110 | 995 | 4190) => ({
  host: v.ns.nsAddress,
  port,
  ca: v.tls.caPem,
  servername: MAIL_HOSTNAME,
  implicitTls: port === 995,
});

async function deliver(to: string, subject: string): Promise<string> {
  const msg = buildMessage({
    from: "sender@remote.test",
    to,
    subject,
    body: "Quarterly numbers attached in the text below.\r\n",
  });
  const out = await sendMail({ ...v.smtp(25), from: "sender@remote.test", to: [to], data: msg.data });
  expect(out.stage).toBe("done");
  return msg.id;
}

describe.skipIf(!canRun)("mail vnode: POP3 and ManageSieve", () => {
  beforeAll(async () => {
    v = await createMailVnode("protos");
    await v.host.applyState(
      create(DesiredStateSchema, {
        generation: 1n,
        settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [] },
        tls: { certificateChainPem: v.tls.certChainPem, privateKeyPem: v.tls.keyPem },
        domains: [{ domain: D, active: true }],
        mailboxes: [
          { address: `pop@${D}`, passwordHash: await hashPassword(PASS.pop), active: true },
          // Its own mailbox for the 995 test: each POP3 test counts exactly the messages it sent.
          { address: `pops@${D}`, passwordHash: await hashPassword(PASS.pop), active: true },
          { address: `sieve@${D}`, passwordHash: await hashPassword(PASS.sieve), active: true },
        ],
      }),
    );
    await v.host.start();
  });

  afterAll(async () => {
    await v?.teardown();
    console.log(
      "mail-protocols timings (ms)",
      Object.fromEntries(Object.entries(timings).map(([k, x]) => [k, Math.round(x)])),
    );
  });

  it("POP3 110: refuses USER/PASS before STLS, then retrieves the delivered message", async () => {
    const id = await deliver(`pop@${D}`, "pop3 over starttls");
    await waitDelivered(v.host.paths.maildir(D, "pop"), id);
    const s = await pop3Connect(target(110));
    try {
      expect(s.greeting.ok).toBe(true);
      const capa = await s.multi("CAPA");
      expect(capa.lines).toContain("STLS");
      // Plaintext credentials are refused (Dovecot: disable_plaintext_auth) and no session opens.
      const plain = await s.login(`pop@${D}`, PASS.pop);
      expect(plain.ok).toBe(false);
      expect(plain.text).toMatch(/-ERR.*(TLS|SSL|plaintext)/i);
      expect((await s.cmd("STAT")).ok).toBe(false);

      expect((await s.stls()).ok).toBe(true);
      const t0 = performance.now();
      expect(await s.login(`pop@${D}`, PASS.pop)).toMatchObject({ ok: true });
      timings.pop3LoginAfterStlsMs = performance.now() - t0;
      const stat = await s.cmd("STAT");
      expect(stat.text).toMatch(/^\+OK 1 \d+$/);
      const retr = await s.multi("RETR 1");
      expect(retr.reply.ok).toBe(true);
      expect(retr.lines).toContain(`Message-ID: ${id}`);
      expect(retr.lines).toContain("Subject: pop3 over starttls");
    } finally {
      await s.quit();
    }
  });

  it("POP3S 995: implicit TLS, wrong password refused, UIDL and RETR of a new message", async () => {
    const id = await deliver(`pops@${D}`, "pop3 over implicit tls");
    await waitDelivered(v.host.paths.maildir(D, "pops"), id);
    const bad = await pop3Connect(target(995));
    expect(bad.greeting.ok).toBe(true);
    expect((await bad.login(`pops@${D}`, "wrong-password")).ok).toBe(false);
    await bad.quit();

    const s = await pop3Connect(target(995));
    try {
      expect(await s.login(`pops@${D}`, PASS.pop)).toMatchObject({ ok: true });
      const uidl = await s.multi("UIDL");
      expect(uidl.lines).toHaveLength(1);
      const list = await s.multi("LIST");
      const found: string[][] = [];
      for (const line of list.lines) {
        const n = line.split(" ")[0] ?? "";
        found.push((await s.multi(`RETR ${n}`)).lines);
      }
      expect(found.some((lines) => lines.includes(`Message-ID: ${id}`))).toBe(true);
    } finally {
      await s.quit();
    }
  });

  it("ManageSieve 4190: STARTTLS, AUTHENTICATE PLAIN, PUTSCRIPT + SETACTIVE; the next delivery is filed", async () => {
    // Before TLS no plaintext mechanism is offered and AUTHENTICATE PLAIN is refused.
    const pre = await sieveConnect(target(4190));
    expect(pre.capabilities()).toHaveProperty("STARTTLS");
    expect(pre.capabilities()["SASL"]).toBe("");
    const refused = await pre.authenticatePlain(`sieve@${D}`, PASS.sieve);
    expect(refused.text).toMatch(/^NO \(ENCRYPT-NEEDED\)/);
    await pre.logout();

    const s = await sieveConnect(target(4190));
    try {
      expect((await s.startTls()).status).toBe("OK");
      expect(s.capabilities()["SASL"]).toContain("PLAIN");
      expect(s.capabilities()["SIEVE"]).toContain("fileinto");
      const t0 = performance.now();
      expect((await s.authenticatePlain(`sieve@${D}`, PASS.sieve)).text).toBe('OK "Logged in."');
      timings.managesieveLoginAfterTlsMs = performance.now() - t0;

      // A script that does not compile is refused with the compiler's words.
      const broken = await s.putScript("broken", 'require ["fileinto"];\nfileinto "x"\n');
      expect(broken.status).toBe("NO");
      expect(broken.text).toMatch(/error/i);
      expect((await s.putScript("reports", SCRIPT)).status).toBe("OK");
      expect((await s.cmd('SETACTIVE "reports"')).status).toBe("OK");
      const list = await s.cmd("LISTSCRIPTS");
      expect(list.status).toBe("OK");
      expect(list.lines).toContain('"reports" ACTIVE');
    } finally {
      await s.logout();
    }

    const maildir = v.host.paths.maildir(D, "sieve");
    const filed = await deliver(`sieve@${D}`, "[reports] Q3 numbers");
    await waitDelivered(maildir, filed, ".Reports");
    expect(inFolder(maildir, filed)).toBe(false);
    const plain = await deliver(`sieve@${D}`, "lunch?");
    await waitDelivered(maildir, plain);
  });
});
