// A tiny POP3 client (RFC 1939 + STLS, RFC 2595) for the protocol tests: enough to prove that
// credentials are refused before TLS and that a delivered message can be listed and retrieved.
import { openLines, type LineConn, type LineTarget } from "./mail-lines.ts";

export interface Pop3Reply {
  readonly ok: boolean;
  readonly text: string;
}

export interface Pop3Session {
  readonly greeting: Pop3Reply;
  cmd(line: string): Promise<Pop3Reply>;
  /** A command with a multi-line answer (CAPA, LIST, UIDL, RETR): the dot-unstuffed lines. */
  multi(line: string): Promise<{ reply: Pop3Reply; lines: string[] }>;
  stls(): Promise<Pop3Reply>;
  /** USER + PASS; the first refusal is returned. */
  login(user: string, pass: string): Promise<Pop3Reply>;
  quit(): Promise<void>;
}

const parse = (line: string): Pop3Reply => ({ ok: line.startsWith("+OK"), text: line });

export async function pop3Connect(t: LineTarget): Promise<Pop3Session> {
  const c: LineConn = await openLines(t);
  const greeting = parse(await c.readLine());
  const cmd = async (line: string): Promise<Pop3Reply> => {
    c.write(`${line}\r\n`);
    return parse(await c.readLine());
  };
  return {
    greeting,
    cmd,
    async multi(line) {
      const reply = await cmd(line);
      const lines: string[] = [];
      if (!reply.ok) return { reply, lines };
      for (;;) {
        const l = await c.readLine();
        if (l === ".") break;
        lines.push(l.startsWith("..") ? l.slice(1) : l);
      }
      return { reply, lines };
    },
    async stls() {
      const r = await cmd("STLS");
      if (r.ok) await c.upgrade();
      return r;
    },
    async login(user, pass) {
      const u = await cmd(`USER ${user}`);
      if (!u.ok) return u;
      return cmd(`PASS ${pass}`);
    },
    async quit() {
      await cmd("QUIT").catch(() => undefined);
      c.close();
    },
  };
}
