// A mailbox just added is asked about once through Dovecot's quota-status policy socket, the way
// Postfix asks at RCPT. Dovecot's first look at a new mailbox (its INBOX, the auto-subscribed
// special-use folders and their indexes: ~6 ms) then happens right after the apply instead of
// inside the first sender's SMTP transaction. Fire and forget: a failure only means the first
// delivery does that work itself, as it would without this.
import { connect } from "node:net";

/** More than this many new mailboxes in one apply (a batch, an import) are left to first use. */
export const MAX_WARMED = 4;
const TIMEOUT_MS = 5000;

/** One policy request for `address` (an ascii address from a checked row); resolves when answered. */
export function askQuotaStatus(socketPath: string, address: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let reply = "";
    const done = (error?: Error): void => {
      socket.destroy();
      if (error) reject(error);
      else resolve(reply.trim());
    };
    socket.setTimeout(TIMEOUT_MS, () => done(new Error("quota-status did not answer")));
    socket.setEncoding("utf8");
    socket.on("error", (error) => done(error));
    socket.on("data", (chunk: string) => {
      reply += chunk;
      if (reply.includes("\n\n")) done();
    });
    socket.on("end", () => done(reply ? undefined : new Error("quota-status closed without an answer")));
    socket.write(
      `request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=SMTP\nrecipient=${address}\nsize=0\n\n`,
    );
  });
}

/** Asks for each of a few new mailboxes in turn; never throws. */
export async function warmNewMailboxes(
  socketPath: string,
  addresses: readonly string[],
  onError: (address: string, error: Error) => void,
): Promise<number> {
  if (addresses.length === 0 || addresses.length > MAX_WARMED) return 0;
  let warmed = 0;
  for (const address of addresses) {
    // A checked row's address has no line breaks; refuse anything else rather than send it.
    if (/[\s=]/.test(address)) continue;
    try {
      await askQuotaStatus(socketPath, address);
      warmed++;
    } catch (error) {
      onError(address, error instanceof Error ? error : new Error(String(error)));
    }
  }
  return warmed;
}
