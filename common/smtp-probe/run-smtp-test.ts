// `mail:test-smtp`, step by step as an administrator would by hand: connect, banner, EHLO,
// STARTTLS or implicit TLS, AUTH, MAIL, RCPT, DATA, then the message's arrival over IMAP. Every
// step is timed, bounded by a timeout, and ends with a defined answer: what was seen, or which
// step failed and why. The first failure ends the run. The same code runs in the CLI and, for
// --from-vnode, inside another vnode's agent.
import type { TLSSocket } from "node:tls";
import { NetservaError } from "../errors.ts";
import { waitForArrival } from "./imap-arrival.ts";
import { openLineSocket, type LineSocket } from "./line-socket.ts";
import { command, readReply, type SmtpReply } from "./smtp-reply.ts";
import { buildTestMessage, dataPayload } from "./test-message.ts";
import { tlsFacts, tlsOptions } from "./tls-facts.ts";

export type TlsMode = "starttls" | "implicit" | "none";

export interface SmtpTestOptions {
  host: string;
  port: number;
  tlsMode: TlsMode;
  serverName: string;
  caPem?: string;
  helo: string;
  auth?: { user: string; password: string };
  /** Without a recipient the run stops after EHLO/TLS/AUTH. */
  from?: string;
  to?: string;
  imap?: { user: string; password: string; port: number; timeoutMs: number };
  stepTimeoutMs: number;
  fromVnode?: string;
}

export interface SmtpTestStep {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
  facts: Record<string, string>;
}

export interface SmtpTestResult {
  ok: boolean;
  steps: SmtpTestStep[];
  token: string;
  messageId: string;
}

class StepFailed extends Error {}

export const DEFAULT_STEP_TIMEOUT_MS = 10_000;

export async function runSmtpTest(o: SmtpTestOptions): Promise<SmtpTestResult> {
  const steps: SmtpTestStep[] = [];
  const result: SmtpTestResult = { ok: false, steps, token: "", messageId: "" };
  const t = o.stepTimeoutMs;
  let conn: LineSocket | undefined;

  /** Runs one step: its answer is the detail/facts it returns, or the reason it threw. */
  const step = async <T>(
    name: string,
    body: () => Promise<{ detail: string; facts?: Record<string, string>; value: T }>,
  ): Promise<T> => {
    const started = performance.now();
    try {
      const { detail, facts, value } = await body();
      steps.push({ name, ok: true, ms: performance.now() - started, detail, facts: facts ?? {} });
      return value;
    } catch (error) {
      const message = error instanceof NetservaError || error instanceof Error ? error.message : String(error);
      steps.push({ name, ok: false, ms: performance.now() - started, detail: message, facts: {} });
      throw new StepFailed(message);
    }
  };
  const expect = (reply: SmtpReply, codes: number[], what: string): SmtpReply => {
    if (!codes.includes(reply.code)) throw new NetservaError("failed_precondition", `${what} refused: ${reply.text}`);
    return reply;
  };
  const secure = (socket: TLSSocket): { detail: string; facts: Record<string, string>; value: undefined } => {
    const f = tlsFacts(socket, o.serverName);
    const facts = {
      protocol: f.protocol,
      cipher: f.cipher,
      subject: f.subject,
      issuer: f.issuer,
      notAfter: f.notAfter,
      subjectAltName: f.subjectAltName,
      trusted: String(f.trusted),
      nameMatches: String(f.nameMatches),
    };
    if (f.problem) throw new NetservaError("unavailable", f.problem);
    return {
      detail: `${f.protocol} ${f.cipher}; ${f.subject}; issuer ${f.issuer}; expires ${f.notAfter}; name ${o.serverName} matches`,
      facts,
      value: undefined,
    };
  };
  const ehlo = async (c: LineSocket): Promise<string[]> =>
    expect(await command(c, `EHLO ${o.helo}`, t, "EHLO"), [250], "EHLO").lines.slice(1);

  try {
    const c = await step("connect", async () => {
      const opened = await openLineSocket({ host: o.host, port: o.port, timeoutMs: t });
      return { detail: `TCP to ${o.host}:${o.port}`, value: opened };
    });
    conn = c;
    if (o.tlsMode === "implicit") {
      await step("tls", async () => secure(await c.upgrade(tlsOptions(o.serverName, o.caPem), t)));
    }
    await step("banner", async () => {
      const r = expect(await readReply(c, t, "banner"), [220], "banner");
      return { detail: r.text, value: undefined };
    });
    let extensions = await step("ehlo", async () => {
      const ext = await ehlo(c);
      return { detail: ext.join(", "), facts: { extensions: ext.join(",") }, value: ext };
    });
    if (o.tlsMode === "starttls") {
      extensions = await step("tls", async () => {
        if (!extensions.some((e) => /^STARTTLS\b/i.test(e)))
          throw new NetservaError("failed_precondition", "STARTTLS not offered in EHLO");
        expect(await command(c, "STARTTLS", t, "STARTTLS"), [220], "STARTTLS");
        const s = secure(await c.upgrade(tlsOptions(o.serverName, o.caPem), t));
        const ext = await ehlo(c);
        return { ...s, facts: { ...s.facts, extensions: ext.join(",") }, value: ext };
      });
    }
    if (o.auth) {
      const auth = o.auth;
      await step("auth", async () => {
        const offered = extensions.find((e) => /^AUTH\b/i.test(e));
        if (!offered)
          throw new NetservaError(
            "failed_precondition",
            "AUTH not offered in EHLO (plaintext port, or TLS needed first)",
          );
        const r = expect(
          await command(
            c,
            `AUTH PLAIN ${Buffer.from(`\0${auth.user}\0${auth.password}`).toString("base64")}`,
            t,
            "AUTH",
          ),
          [235],
          "AUTH",
        );
        return { detail: r.text, facts: { mechanisms: offered.slice(5) }, value: undefined };
      });
    }
    if (o.to) {
      const to = o.to;
      const from = o.from ?? o.auth?.user ?? `postmaster@${o.helo}`;
      const message = buildTestMessage({ from, to, helo: o.helo, ...(o.fromVnode ? { fromVnode: o.fromVnode } : {}) });
      result.token = message.token;
      result.messageId = message.messageId;
      await step("mail", async () => ({
        detail: expect(await command(c, `MAIL FROM:<${from}>`, t, "MAIL FROM"), [250], "MAIL FROM").text,
        value: undefined,
      }));
      await step("rcpt", async () => ({
        detail: expect(await command(c, `RCPT TO:<${to}>`, t, "RCPT TO"), [250, 251], "RCPT TO").text,
        value: undefined,
      }));
      await step("data", async () => {
        expect(await command(c, "DATA", t, "DATA"), [354], "DATA");
        c.write(dataPayload(message.data));
        const r = expect(await readReply(c, t, "end of DATA"), [250], "message");
        return { detail: r.text, facts: { token: message.token, messageId: message.messageId }, value: undefined };
      });
      c.write("QUIT\r\n");
      c.close();
      conn = undefined;
      if (o.imap) {
        const imap = o.imap;
        await step("arrival", async () => {
          const found = await waitForArrival({
            host: o.host,
            port: imap.port,
            serverName: o.serverName,
            caPem: o.caPem,
            user: imap.user,
            password: imap.password,
            token: message.token,
            timeoutMs: imap.timeoutMs,
            stepTimeoutMs: t,
          });
          return {
            detail: `in INBOX of ${imap.user} after ${Math.round(found.ms)} ms (uid ${found.uid})`,
            facts: { deliveryMs: String(Math.round(found.ms)) },
            value: undefined,
          };
        });
      }
    }
    result.ok = true;
  } catch (error) {
    if (!(error instanceof StepFailed)) throw error;
  } finally {
    conn?.close();
  }
  return result;
}
