// Test messages that look like real mail (Date, Message-ID, display names, MIME): Rspamd scores
// bare test messages into greylist on MISSING_DATE/MISSING_MID alone.
import { randomUUID } from "node:crypto";
import { EICAR } from "../../agent/clamav/signatures.ts";

/** The standard GTUBE string: Rspamd rejects any message containing it. */
export const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

interface Envelope {
  readonly from: string;
  readonly to: string;
  readonly subject?: string;
}

function headers(e: Envelope, extra: string[] = []): string {
  const domain = e.from.slice(e.from.indexOf("@") + 1);
  return [
    `Date: ${new Date().toUTCString().replace("GMT", "+0000")}`,
    `Message-ID: <${randomUUID()}@${domain}>`,
    `From: Alice Example <${e.from}>`,
    `To: Bob Example <${e.to}>`,
    `Subject: ${e.subject ?? "Lunch on Thursday"}`,
    "MIME-Version: 1.0",
    ...extra,
  ].join("\r\n");
}

export function hamMessage(e: Envelope): string {
  return (
    `${headers(e, ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 7bit"])}\r\n\r\n` +
    "Hi Bob,\r\n\r\nare we still on for lunch on Thursday? The usual place at half past twelve\r\n" +
    "suits me, and I will bring the notes from the planning meeting.\r\n\r\nCheers,\r\nAlice\r\n"
  );
}

export function gtubeMessage(e: Envelope): string {
  return `${headers(e, ["Content-Type: text/plain; charset=utf-8"])}\r\n\r\nThis is a test.\r\n${GTUBE}\r\n`;
}

/** EICAR as a base64 attachment, the way a real virus arrives. */
export function eicarMessage(e: Envelope): string {
  const b = "nsm-boundary-1";
  return (
    `${headers({ ...e, subject: "Invoice attached" }, [`Content-Type: multipart/mixed; boundary="${b}"`])}\r\n\r\n` +
    `--${b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find the invoice attached.\r\n` +
    `--${b}\r\nContent-Type: application/octet-stream; name="invoice.com"\r\n` +
    `Content-Disposition: attachment; filename="invoice.com"\r\nContent-Transfer-Encoding: base64\r\n\r\n` +
    `${Buffer.from(EICAR, "latin1").toString("base64")}\r\n--${b}--\r\n`
  );
}
