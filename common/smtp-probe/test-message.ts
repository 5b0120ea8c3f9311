// The test message: real-looking mail (Date, Message-ID, a HELO-derived domain) so filters do not
// score it as junk for being sloppy, carrying a unique token the IMAP check searches for.
import { randomBytes } from "node:crypto";

export const TOKEN_HEADER = "X-Netserva-Test";

export interface TestMessage {
  token: string;
  messageId: string;
  data: string;
}

export function buildTestMessage(o: { from: string; to: string; helo: string; fromVnode?: string }): TestMessage {
  const token = `nsm-${Date.now().toString(36)}-${randomBytes(6).toString("hex")}`;
  const messageId = `<${token}@${o.helo}>`;
  const lines = [
    `From: netserva-mail test <${o.from}>`,
    `To: <${o.to}>`,
    `Subject: netserva-mail SMTP test ${token}`,
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: ${messageId}`,
    `${TOKEN_HEADER}: ${token}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 7bit",
    "",
    "This is a test message sent by `netserva-mail mail:test-smtp`.",
    `It was sent${o.fromVnode ? ` from vnode ${o.fromVnode}` : ""} at ${new Date().toISOString()}.`,
    `Token: ${token}`,
    "",
  ];
  return { token, messageId, data: lines.join("\r\n") };
}

/** RFC 5321 dot-stuffing and the terminating line. */
export function dataPayload(data: string): string {
  const body = data.replace(/\r?\n/g, "\r\n").replace(/^\./gm, "..");
  return `${body.endsWith("\r\n") ? body : `${body}\r\n`}.\r\n`;
}
