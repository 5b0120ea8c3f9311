// Part of scripts/demo: send one message in over SMTP (port 25, STARTTLS) and read it back over
// IMAPS, verifying the vnode's certificate against the controller's CA. Exits non-zero on failure.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { ImapFlow } from "imapflow";
import nodemailer from "nodemailer";

const [host, hostname, address, password, caFile] = process.argv.slice(2);
if (!host || !hostname || !address || !password || !caFile) {
  console.error("usage: demo-mail-check HOST MAIL_HOSTNAME ADDRESS PASSWORD CA_FILE");
  process.exit(2);
}
const ca = readFileSync(caFile, "utf8");
const token = randomUUID();
const started = Date.now();

const transport = nodemailer.createTransport({
  host,
  port: 25,
  name: "demo.sender.test",
  requireTLS: true,
  tls: { ca, servername: hostname },
});
await transport.sendMail({
  from: "demo@sender.test",
  to: address,
  subject: `netserva-mail demo ${token}`,
  text: "Delivered by Postfix, over LMTP to Dovecot, read back over IMAP.\n",
});
const sent = Date.now();

const imap = new ImapFlow({
  host,
  port: 993,
  secure: true,
  auth: { user: address, pass: password },
  tls: { ca, servername: hostname },
  logger: false,
});
await imap.connect();
const deadline = Date.now() + 10_000;
let found = false;
while (!found && Date.now() < deadline) {
  const lock = await imap.getMailboxLock("INBOX");
  try {
    const uids = await imap.search({ subject: token }, { uid: true });
    found = Array.isArray(uids) && uids.length > 0;
  } finally {
    lock.release();
  }
  if (!found) await new Promise((r) => setTimeout(r, 100));
}
await imap.logout();
if (!found) {
  console.error("the demo message did not arrive within 10 s");
  process.exit(1);
}
console.log(`sent over SMTP in ${sent - started} ms; read back over IMAP ${Date.now() - sent} ms later`);
