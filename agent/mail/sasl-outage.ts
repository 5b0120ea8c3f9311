// Telling "Postfix throttled 465/587 after a moment without Dovecot's auth" from "the new config
// is broken", by the daemons' own words. An smtpd that finds no mechanisms on Dovecot's auth
// socket exits "fatal: no SASL authentication mechanisms" and Postfix's master throttles its
// service for service_throttle_time; during Dovecot's reload that is a passing outage
// (auth-ready.ts), not the config: if those are Postfix's only words and the auth socket the
// config names answers with mechanisms now, verification waits the throttle out and probes again
// instead of rolling a sound change back. A config that breaks auth still fails: its socket does
// not answer, or Postfix says something else.
import { authHandshake } from "./auth-ready.ts";

const NO_MECHANISMS = /\/smtpd: fatal: no SASL authentication mechanisms$/;

/** Postfix's words (daemon-log.ts) are all "no SASL authentication mechanisms" of an smtpd. */
export function onlyNoMechanisms(words: readonly string[]): boolean {
  return words.length > 0 && words.every((w) => NO_MECHANISMS.test(w));
}

/** The words tell of a passing auth outage, and Dovecot's auth answers again. */
export async function passingSaslOutage(words: readonly string[], authSocket: string): Promise<boolean> {
  return onlyNoMechanisms(words) && (await authHandshake(authSocket)) !== undefined;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** service_throttle_time of a main.cf in seconds (Postfix's default: 60 s). */
export function postfixThrottleSeconds(mainCf: string | undefined): number {
  let value = "60s";
  for (const l of (mainCf ?? "").split("\n")) {
    const m = /^\s*service_throttle_time\s*=\s*(\S+)\s*$/.exec(l);
    if (m) value = m[1] ?? value;
  }
  const m = /^(\d+)([smhdw]?)$/.exec(value);
  return m ? Number(m[1]) * (UNIT_SECONDS[m[2] || "s"] ?? 1) : 60;
}
