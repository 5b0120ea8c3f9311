// IMAP helpers for the mail tests: "can this user log in", and a raw plaintext exchange on 143
// to prove credentials are refused before TLS (a library client would refuse to even try).
import { connect } from "node:net";
import type { ImapFlow } from "imapflow";

export async function canLogin(client: ImapFlow): Promise<boolean> {
  try {
    await client.connect();
  } catch {
    return false;
  }
  await client.logout().catch(() => undefined);
  return true;
}

/** Send `a LOGIN user pass` over plain TCP; returns the greeting and the tagged reply. */
export function plaintextLogin(
  host: string,
  port: number,
  user: string,
  pass: string,
): Promise<{ greeting: string; reply: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let buf = "";
    let greeting = "";
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`IMAP timeout: ${buf}`));
    }, 10_000);
    s.setEncoding("latin1");
    s.on("error", reject);
    s.on("data", (d: string) => {
      buf += d;
      if (!greeting && buf.includes("\r\n")) {
        greeting = buf.slice(0, buf.indexOf("\r\n"));
        buf = "";
        s.write(`a LOGIN "${user}" "${pass}"\r\n`);
        return;
      }
      const m = /^a (OK|NO|BAD)[^\r\n]*/m.exec(buf);
      if (m) {
        clearTimeout(timer);
        s.destroy();
        resolve({ greeting, reply: m[0] });
      }
    });
  });
}
