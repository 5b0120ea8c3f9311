// A tiny ManageSieve client (RFC 5804) for the protocol tests: capabilities, STARTTLS,
// AUTHENTICATE PLAIN, PUTSCRIPT, SETACTIVE, LISTSCRIPTS. Responses end with an OK/NO/BYE line;
// literals ({n} at the end of a line) are read by length, so a script's text never confuses it.
import { openLines, type LineConn, type LineTarget } from "./mail-lines.ts";

export interface SieveResponse {
  /** "OK" | "NO" | "BYE" */
  readonly status: string;
  /** The final line, e.g. `OK "Logged in."`. */
  readonly text: string;
  /** Lines before the final one (literals inlined). */
  readonly lines: string[];
}

export interface SieveSession {
  /** Capabilities the server announced (upper-case name → value). */
  capabilities(): Record<string, string>;
  cmd(line: string): Promise<SieveResponse>;
  startTls(): Promise<SieveResponse>;
  authenticatePlain(user: string, pass: string): Promise<SieveResponse>;
  putScript(name: string, script: string): Promise<SieveResponse>;
  logout(): Promise<void>;
}

const quoted = (s: string): string => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;

async function readResponse(c: LineConn): Promise<SieveResponse> {
  const lines: string[] = [];
  for (;;) {
    let line = await c.readLine();
    const lit = /\{(\d+)\+?\}$/.exec(line);
    // A literal may carry the final line's text too (`NO {57}` + the compiler's error).
    if (lit) line = line.slice(0, lit.index) + (await c.readBytes(Number(lit[1]))) + (await c.readLine());
    const m = /^(OK|NO|BYE)\b/i.exec(line);
    if (m) return { status: (m[1] ?? "").toUpperCase(), text: line, lines };
    lines.push(line);
  }
}

function capabilityMap(lines: readonly string[]): Record<string, string> {
  const caps: Record<string, string> = {};
  for (const l of lines) {
    const m = /^"([^"]+)"(?:\s+"([^"]*)")?/.exec(l);
    if (m) caps[(m[1] ?? "").toUpperCase()] = m[2] ?? "";
  }
  return caps;
}

export async function sieveConnect(t: LineTarget): Promise<SieveSession> {
  const c = await openLines(t);
  let caps = capabilityMap((await readResponse(c)).lines);
  const cmd = async (line: string): Promise<SieveResponse> => {
    c.write(`${line}\r\n`);
    return readResponse(c);
  };
  return {
    capabilities: () => caps,
    cmd,
    async startTls() {
      const r = await cmd("STARTTLS");
      if (r.status !== "OK") return r;
      await c.upgrade();
      // RFC 5804 2.2: the server sends its capabilities again over TLS.
      const again = await readResponse(c);
      caps = capabilityMap(again.lines);
      return again;
    },
    // The initial response must be a quoted string: Dovecot answers a literal with an empty
    // challenge instead. (Dovecot 2.3 also fails every AUTHENTICATE after a refused one on the
    // same connection with "Invalid base64 data": test refusals on a connection of their own.)
    authenticatePlain: (user, pass) =>
      cmd(`AUTHENTICATE "PLAIN" ${quoted(Buffer.from(`\0${user}\0${pass}`).toString("base64"))}`),
    async putScript(name, script) {
      c.write(`PUTSCRIPT ${quoted(name)} {${Buffer.byteLength(script)}+}\r\n${script}\r\n`);
      return readResponse(c);
    },
    async logout() {
      await cmd("LOGOUT").catch(() => undefined);
      c.close();
    },
  };
}
