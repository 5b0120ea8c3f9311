// Regression (found by fault-mail-in-flight): a graceful Postfix restart delivered one message
// twice. `postfix stop` ends the delivery agents at once; an LMTP client ended after Dovecot saved
// the message but before it read the 250 leaves the queue file undelivered, and the new Postfix
// delivers it again. The global Sieve script now drops a repeat of the same queue file (keyed on
// our Postfix's Received line), and only that. Here the repeat is replayed straight into Dovecot's
// LMTP socket, byte for byte as Postfix's retry would send it, against the real Dovecot.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { MAIL_HOSTNAME, createMailVnode, hashPassword, type MailVnode } from "../helpers/mail-vnode.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");
const D = "dedup.test";
let v: MailVnode;

/** One LMTP transaction on Dovecot's socket, as Postfix's lmtp client speaks it; the final reply. */
function lmtpDeliver(socket: string, to: string, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ path: socket });
    const lines = [`LHLO ${MAIL_HOSTNAME}`, "MAIL FROM:<sender@remote.test>", `RCPT TO:<${to}>`, "DATA"];
    let buf = "";
    let step = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`LMTP timeout: ${buf}`));
    }, 30_000);
    s.setEncoding("latin1");
    s.on("error", reject);
    s.on("data", (d: string) => {
      buf += d;
      for (;;) {
        const m = /^(\d{3}) [^\n]*\n/m.exec(buf);
        if (!m) return;
        const reply = buf.slice(0, m.index + m[0].length).trim();
        buf = buf.slice(m.index + m[0].length);
        const next = lines[step];
        step += 1;
        if (next !== undefined) s.write(`${next}\r\n`);
        else if (step === lines.length + 1) s.write(`${data}\r\n.\r\n`);
        else {
          clearTimeout(timer);
          s.end("QUIT\r\n");
          resolve(reply.split("\n").pop() ?? reply);
          return;
        }
      }
    });
  });
}

function message(o: { queueId?: string; messageId: string; marker: string }): string {
  const received = o.queueId
    ? [
        "Received: from client.remote.test (unknown [192.0.2.7])",
        `\tby ${MAIL_HOSTNAME} (Postfix) with ESMTP id ${o.queueId}`,
        `\tfor <alice@${D}>; Mon,  7 Dec 2026 02:00:33 +0000 (UTC)`,
      ]
    : [];
  return [
    ...received,
    "From: sender@remote.test",
    `To: alice@${D}`,
    "Subject: retry",
    "Date: Mon, 7 Dec 2026 02:00:33 +0000",
    `Message-ID: ${o.messageId}`,
    "",
    o.marker,
  ].join("\r\n");
}

/** Messages in alice's INBOX whose body holds the marker. */
function copies(marker: string): number {
  const inbox = v.host.paths.maildir(D, "alice");
  let n = 0;
  for (const sub of ["new", "cur"]) {
    const dir = join(inbox, sub);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) if (readFileSync(join(dir, f), "utf8").includes(marker)) n += 1;
  }
  return n;
}

describe.skipIf(!canRun)("a retried LMTP delivery of one queued message is stored once", () => {
  beforeAll(async () => {
    v = await createMailVnode("dedup");
    await v.host.applyState(
      create(DesiredStateSchema, {
        generation: 1n,
        settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [] },
        tls: { certificateChainPem: v.tls.certChainPem, privateKeyPem: v.tls.keyPem },
        domains: [{ domain: D, active: true }],
        mailboxes: [{ address: `alice@${D}`, passwordHash: await hashPassword("alice-Secret-1"), active: true }],
      }),
    );
    await v.host.start();
  }, 120_000);

  afterAll(async () => {
    await v?.teardown();
  });

  it("drops the repeat of one queue file, keeps two messages that only share a Message-ID", async () => {
    const lmtp = v.host.paths.dovecotLmtpSocket;
    const to = `alice@${D}`;
    const first = message({ queueId: "4F1A2B3C4D", messageId: "<shared@remote.test>", marker: "marker-first" });
    // Postfix's retry after an interrupted delivery: the same bytes again. Both are answered 250
    // (Postfix must take the repeat as delivered), and one copy is stored.
    expect(await lmtpDeliver(lmtp, to, first)).toMatch(/^250 /);
    expect(await lmtpDeliver(lmtp, to, first)).toMatch(/^250 /);
    expect(copies("marker-first")).toBe(1);
    // Another queue file (another message) with the same Message-ID: not a retry, both kept.
    const other = message({ queueId: "5E6F7A8B9C", messageId: "<shared@remote.test>", marker: "marker-other" });
    expect(await lmtpDeliver(lmtp, to, other)).toMatch(/^250 /);
    expect(copies("marker-other")).toBe(1);
    // Nothing from our Postfix to key on: never dropped.
    const bare = message({ messageId: "<bare@remote.test>", marker: "marker-bare" });
    expect(await lmtpDeliver(lmtp, to, bare)).toMatch(/^250 /);
    expect(await lmtpDeliver(lmtp, to, bare)).toMatch(/^250 /);
    expect(copies("marker-bare")).toBe(2);
  }, 120_000);
});
