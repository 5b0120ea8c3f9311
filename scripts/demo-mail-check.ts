// Part of scripts/demo: prove the whole stack of the demo vnode with real mail, and print what was
// checked. Exits non-zero on the first check that fails.
//   1. a plain message in over SMTP (port 25, STARTTLS) is read back over IMAPS;
//   2. GTUBE on port 25 is refused by Rspamd (through the Postfix milter);
//   3. EICAR on port 25 is refused (ClamAV, through Rspamd's antivirus module);
//   4. a message submitted on 587 (AUTH) arrives DKIM-signed, and the signature verifies against
//      the record mail:configure-dkim printed (mailauth, an independent implementation).
// The vnode's certificate is verified against the controller's CA every time.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { ImapFlow } from "imapflow";
import { dkimVerify } from "mailauth";
import nodemailer from "nodemailer";
import type { SendMailOptions, Transporter } from "nodemailer";

function args(): [string, string, string, string, string, string] {
  const [host, hostname, address, password, caFile, dkimFile] = process.argv.slice(2);
  if (!host || !hostname || !address || !password || !caFile || !dkimFile) {
    console.error("usage: demo-mail-check HOST MAIL_HOSTNAME ADDRESS PASSWORD CA_FILE DKIM_RECORDS_JSON");
    process.exit(2);
  }
  return [host, hostname, address, password, caFile, dkimFile];
}
const [host, hostname, address, password, caFile, dkimFile] = args();
const ca = readFileSync(caFile, "utf8");
const tls = { ca, servername: hostname };
const domain = address.slice(address.indexOf("@") + 1);
// What mail:configure-dkim --json printed: records [{ name: "sel._domainkey.dom.", values: [TXT] }].
const dkimRecords = (JSON.parse(readFileSync(dkimFile, "utf8")) as { records: { name: string; values: string[] }[] })
  .records;
const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

function fail(what: string): never {
  console.error(`FAILED: ${what}`);
  process.exit(1);
}
// A refused connection or a failed login (a daemon down) is a failed check, said in one line: not
// a stack trace.
const failOn = (error: unknown): never => fail(error instanceof Error ? error.message : String(error));
process.on("uncaughtException", failOn);
process.on("unhandledRejection", failOn);

const inbound = nodemailer.createTransport({ host, port: 25, name: "demo.sender.test", requireTLS: true, tls });
const submission = nodemailer.createTransport({
  host,
  port: 587,
  name: "demo.client.test",
  requireTLS: true,
  auth: { user: address, pass: password },
  tls,
});

/** The server's refusal of a message (code and text), or undefined when it was accepted. */
/**
 * The 5xx a message gets, or undefined if it was accepted. A 4xx is sent again for up to a minute:
 * the virus scanner fails closed, so while clamd is still loading its signatures a message with
 * an attachment is deferred (451 4.7.1), as a real sender would see and retry.
 */
async function refusal(transport: Transporter, mail: SendMailOptions): Promise<string | undefined> {
  for (const deadline = Date.now() + 60_000; ;) {
    try {
      await transport.sendMail(mail);
      return undefined;
    } catch (error) {
      const e = error as { responseCode?: number; response?: string; message?: string };
      if (e.responseCode !== undefined && e.responseCode >= 500) return e.response ?? String(e.responseCode);
      if (e.responseCode === undefined || e.responseCode < 400 || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** Poll INBOX for a message with this subject token; its raw source, or undefined after 15 s. */
async function fetchBySubject(token: string): Promise<string | undefined> {
  const imap = new ImapFlow({
    host,
    port: 993,
    secure: true,
    auth: { user: address, pass: password },
    tls,
    logger: false,
  });
  imap.on("error", () => undefined);
  await imap.connect();
  try {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const lock = await imap.getMailboxLock("INBOX");
      try {
        const uids = await imap.search({ subject: token }, { uid: true });
        const uid = Array.isArray(uids) ? uids[0] : undefined;
        if (uid !== undefined) {
          const message = await imap.fetchOne(String(uid), { source: true }, { uid: true });
          if (message && message.source) return message.source.toString("utf8");
        }
      } finally {
        lock.release();
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return undefined;
  } finally {
    await imap.logout();
  }
}

// 1. Plain mail in, read back. Right after the stack (re)starts, Postfix may answer 4xx until
// Rspamd's milter is up (milter_default_action = tempfail): retry those for up to a minute.
const hamToken = randomUUID();
let started = Date.now();
for (const deadline = Date.now() + 60_000; ;) {
  started = Date.now();
  try {
    await inbound.sendMail({
      from: "Demo Sender <demo@sender.test>",
      to: address,
      subject: `netserva-mail demo ${hamToken}`,
      text: "Delivered by Postfix, scanned by Rspamd and ClamAV, over LMTP to Dovecot, read back over IMAP.\n",
    });
    break;
  } catch (error) {
    const code = (error as { responseCode?: number }).responseCode ?? 0;
    if (code < 400 || code >= 500 || Date.now() > deadline) throw error;
    await new Promise((r) => setTimeout(r, 500));
  }
}
const sent = Date.now();
if (!(await fetchBySubject(hamToken))) fail("the demo message did not arrive in INBOX within 15 s");
console.log(
  `ok  mail in:  SMTP :25 (STARTTLS) in ${sent - started} ms; read back over IMAPS ${Date.now() - sent} ms later`,
);

// 2. GTUBE: Rspamd's reject action, answered at the end of DATA.
const spam = await refusal(inbound, {
  from: "Spammer <spam@sender.test>",
  to: address,
  subject: `GTUBE ${randomUUID()}`,
  text: `This is the GTUBE test message.\n${GTUBE}\n`,
});
if (!spam) fail("a GTUBE message was accepted: Rspamd did not reject it");
console.log(`ok  spam:     GTUBE refused by Rspamd: ${spam}`);

// 3. EICAR as an attachment: ClamAV finds it, Rspamd rejects the message.
const virus = await refusal(inbound, {
  from: "Invoices <billing@sender.test>",
  to: address,
  subject: `Invoice ${randomUUID()}`,
  text: "Please find the invoice attached.\n",
  attachments: [{ filename: "invoice.com", content: Buffer.from(EICAR, "latin1") }],
});
if (!virus) fail("an EICAR attachment was accepted: ClamAV/Rspamd did not reject it");
console.log(`ok  virus:    EICAR refused by ClamAV through Rspamd: ${virus}`);

// 4. Outgoing mail is DKIM-signed: submit on 587, read the delivered copy, verify its signature.
const dkimToken = randomUUID();
await submission.sendMail({
  from: `Demo User <${address}>`,
  to: address,
  subject: `netserva-mail signed ${dkimToken}`,
  text: "Submitted on port 587 and signed by Rspamd with the domain's DKIM key.\n",
});
const signed = await fetchBySubject(dkimToken);
if (!signed) fail("the submitted message did not arrive within 15 s");
const txt = new Map(dkimRecords.map((r) => [r.name.replace(/\.$/, "").toLowerCase(), r.values]));
const verified = await dkimVerify(Buffer.from(signed), {
  // The demo has no DNS: answer with the record mail:configure-dkim printed for publishing.
  resolver: async (name: string, rrtype: string) => {
    const values = rrtype === "TXT" ? txt.get(name.replace(/\.$/, "").toLowerCase()) : undefined;
    if (!values) throw Object.assign(new Error(`no ${rrtype} record for ${name}`), { code: "ENOTFOUND" });
    return values.map((v) => [v]);
  },
});
const passed = verified.results.filter((r) => r.status.result === "pass" && r.signingDomain === domain);
if (passed.length === 0)
  fail(
    `no passing DKIM signature of ${domain}: ${JSON.stringify(verified.results.map((r) => [r.selector, r.status.result]))}`,
  );
console.log(
  `ok  dkim:     submitted on 587, signed d=${domain} s=${passed.map((r) => r.selector).join(",")} (${passed.map((r) => r.algo).join(",")}), verified: pass`,
);
