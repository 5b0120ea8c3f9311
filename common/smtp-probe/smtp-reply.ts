// SMTP replies: a multi-line reply ends at the line whose code is followed by a space.
import type { LineSocket } from "./line-socket.ts";

export interface SmtpReply {
  code: number;
  lines: string[];
  /** The reply as the server wrote it, lines joined with " / ". */
  text: string;
}

export function replyComplete(lines: string[]): boolean {
  return lines.some((l) => /^\d{3}(?: |$)/.test(l));
}

export function parseReply(lines: string[]): SmtpReply {
  const last = lines.findIndex((l) => /^\d{3}(?: |$)/.test(l));
  const own = lines.slice(0, last + 1);
  return {
    code: Number(own[own.length - 1]?.slice(0, 3) ?? 0),
    lines: own.map((l) => l.slice(4)),
    text: own.join(" / "),
  };
}

export async function readReply(conn: LineSocket, timeoutMs: number, what: string): Promise<SmtpReply> {
  return parseReply(await conn.readUntil(replyComplete, timeoutMs, what));
}

export async function command(conn: LineSocket, line: string, timeoutMs: number, what: string): Promise<SmtpReply> {
  conn.write(`${line}\r\n`);
  return readReply(conn, timeoutMs, what);
}
