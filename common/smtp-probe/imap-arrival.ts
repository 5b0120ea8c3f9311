// Waits for the test message to arrive in a mailbox: IMAPS login, then UID SEARCH on the token
// header until it is found or the deadline passes. A dozen lines of IMAP, not a library: the
// agent runs this too, and it needs nothing beyond LOGIN, SELECT and SEARCH.
import { NetservaError, invalid } from "../errors.ts";
import { openLineSocket, type LineSocket } from "./line-socket.ts";
import { TOKEN_HEADER } from "./test-message.ts";
import { tlsFacts, tlsOptions } from "./tls-facts.ts";
import type { TLSSocket } from "node:tls";

export interface ArrivalOptions {
  host: string;
  port: number;
  serverName: string;
  caPem: string | undefined;
  user: string;
  password: string;
  token: string;
  timeoutMs: number;
  stepTimeoutMs: number;
}

function quoted(value: string, field: string): string {
  if (/[\r\n\0]/.test(value) || /[^\x20-\x7e]/.test(value))
    throw invalid(field, "must be printable ASCII for an IMAP LOGIN");
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

async function tagged(conn: LineSocket, tag: string, line: string, timeoutMs: number): Promise<string[]> {
  conn.write(`${tag} ${line}\r\n`);
  const lines = await conn.readUntil(
    (ls) => ls.some((l) => l.startsWith(`${tag} `)),
    timeoutMs,
    `IMAP ${line.split(" ")[0] ?? ""}`,
  );
  const status = lines.find((l) => l.startsWith(`${tag} `)) ?? "";
  if (!status.startsWith(`${tag} OK`)) {
    const verb = line.split(" ")[0] ?? "";
    throw new NetservaError("failed_precondition", `IMAP ${verb} refused: ${status.slice(tag.length + 1)}`);
  }
  return lines;
}

/** Milliseconds from the call until the message was visible in INBOX. */
export async function waitForArrival(o: ArrivalOptions): Promise<{ ms: number; uid: string }> {
  const started = performance.now();
  const conn = await openLineSocket({
    host: o.host,
    port: o.port,
    timeoutMs: o.stepTimeoutMs,
    tls: tlsOptions(o.serverName, o.caPem),
  });
  try {
    const facts = tlsFacts(conn.socket as TLSSocket, o.serverName);
    if (facts.problem) throw new NetservaError("unavailable", `IMAP TLS: ${facts.problem}`);
    await conn.readUntil((ls) => ls.some((l) => l.startsWith("* ")), o.stepTimeoutMs, "IMAP greeting");
    await tagged(
      conn,
      "a1",
      `LOGIN ${quoted(o.user, "imap user")} ${quoted(o.password, "imap password")}`,
      o.stepTimeoutMs,
    );
    await tagged(conn, "a2", "SELECT INBOX", o.stepTimeoutMs);
    let n = 3;
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      const lines = await tagged(
        conn,
        `a${n++}`,
        `UID SEARCH HEADER ${TOKEN_HEADER} ${quoted(o.token, "token")}`,
        o.stepTimeoutMs,
      );
      const uid = lines
        .find((l) => l.startsWith("* SEARCH "))
        ?.slice(9)
        .trim()
        .split(" ")[0];
      if (uid) {
        const ms = performance.now() - started;
        conn.write(`a${n} LOGOUT\r\n`);
        return { ms, uid };
      }
      if (Date.now() > deadline)
        throw new NetservaError("deadline_exceeded", `message not in INBOX of ${o.user} after ${o.timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
      // Dovecot sees new mail on the next command; NOOP makes sure the view is refreshed.
      await tagged(conn, `a${n++}`, "NOOP", o.stepTimeoutMs);
    }
  } finally {
    conn.close();
  }
}
