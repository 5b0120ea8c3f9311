// Dovecot's auth service as Postfix's smtpd meets it (smtpd_sasl_path). An smtpd asks the socket
// for its mechanisms in its first SASL session (465 after the TLS handshake, 587 after STARTTLS)
// and exits "fatal: no SASL authentication mechanisms" if the handshake fails; one that dies before
// serving anybody makes Postfix's master throttle that service (service_throttle_time).
//
// Dovecot's reload (2.3, master/service-listen.c) never keeps a unix listener: the master reads the
// new config, then unlinks the socket and binds a new one, and the old auth process closes its copy
// when it notices, resetting connections queued on it it never accepted. So the socket answering
// right after `doveadm reload` proves nothing: the OLD auth process answers until the swap. The
// handshake names the answering process (SPID): the swap is over once another process answers.
import { createConnection } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

export interface AuthHandshake {
  /** The auth process that answered. */
  readonly spid: string;
  readonly mechanisms: readonly string[];
}

/** One handshake (VERSION, MECH…, SPID, …, DONE) within `timeoutMs`, or undefined. */
export function authHandshake(socketPath: string, timeoutMs = 1_000): Promise<AuthHandshake | undefined> {
  return new Promise((resolve) => {
    let seen = "";
    const socket = createConnection(socketPath);
    const finish = (answer: AuthHandshake | undefined): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(`VERSION\t1\t2\nCPID\t${process.pid}\n`));
    socket.on("data", (chunk: string) => {
      seen += chunk;
      if (seen.length > 65_536) return finish(undefined);
      const lines = seen.split("\n");
      if (!lines.slice(0, -1).includes("DONE")) return;
      const mechanisms = lines.filter((l) => l.startsWith("MECH\t")).map((l) => l.split("\t")[1] ?? "");
      const spid = lines.find((l) => l.startsWith("SPID\t"))?.slice(5) ?? "";
      finish(mechanisms.length > 0 && spid !== "" ? { spid, mechanisms } : undefined);
    });
    socket.on("error", () => finish(undefined));
    socket.on("close", () => finish(undefined));
  });
}

export interface WaitNewAuthOptions {
  readonly deadlineMs?: number;
  readonly gapMs?: number;
  /** Stop waiting early (Dovecot said the reload failed: no new process is coming). */
  readonly giveUp?: () => boolean;
}

/**
 * After Dovecot's reload: polls until an auth process other than `oldSpid` (the one that answered
 * before it) completes a handshake with mechanisms, or the deadline passes. True when it did.
 */
export async function waitNewAuth(
  socketPath: string,
  oldSpid: string | undefined,
  o: WaitNewAuthOptions = {},
): Promise<boolean> {
  const end = Date.now() + (o.deadlineMs ?? 10_000);
  for (;;) {
    const left = end - Date.now();
    const answer = await authHandshake(socketPath, Math.max(100, Math.min(1_000, left)));
    if (answer && answer.spid !== oldSpid) return true;
    if (Date.now() >= end || o.giveUp?.()) return false;
    await delay(o.gapMs ?? 50);
  }
}
