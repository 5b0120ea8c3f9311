// Verification after a reload: every listener the new config gives a reloaded daemon greets, on
// every listen address, and presents the configured certificate. A probe that keeps failing while
// the daemon's log explains why fails at once with those words; otherwise the daemons get until
// the deadline (an smtpd of the old generation may still take a connection or two).
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { NetservaError } from "../../common/errors.ts";
import { daemonWords, quoteWords, type LogMarks, type MailDaemon } from "./daemon-log.ts";
import { MAIL_LISTENERS, probeListener } from "./listener-probes.ts";

export interface VerifyListenersOptions {
  /** The daemons that were reloaded onto the new config. */
  readonly daemons: readonly MailDaemon[];
  /** The listen addresses of the new config; none means all, probed on loopback. */
  readonly addresses: readonly string[];
  /** The certificate (chain, leaf first) the config names. */
  readonly certificatePath: string;
  readonly marks: LogMarks;
  readonly deadlineMs?: number;
  /**
   * True when `words` tell of an outage the daemon gets over by itself (sasl-outage.ts): then they
   * do not end verification early; the probes go on until they pass or the deadline.
   */
  readonly passing?: (daemon: MailDaemon, words: readonly string[]) => Promise<boolean>;
}

/** Rounds a probe must fail, with the daemon's log saying why, before verification gives up early. */
const EARLY_ROUNDS = 3;
const ROUND_GAP_MS = 100;

export async function verifyListeners(o: VerifyListenersOptions): Promise<void> {
  if (o.daemons.length === 0) return;
  const fingerprint = new X509Certificate(readFileSync(o.certificatePath)).fingerprint256;
  const hosts = o.addresses.length > 0 ? o.addresses : ["127.0.0.1"];
  const targets = hosts.flatMap((host) =>
    MAIL_LISTENERS.filter((l) => o.daemons.includes(l.daemon)).map((l) => ({ host, l })),
  );
  const end = Date.now() + (o.deadlineMs ?? 10_000);
  const failedRounds = new Map<MailDaemon, number>();
  for (;;) {
    const results = await Promise.all(
      targets.map(async ({ host, l }) => ({ daemon: l.daemon, problem: await probeListener(host, l, fingerprint) })),
    );
    const failing = new Map<MailDaemon, string[]>();
    for (const r of results) if (r.problem) failing.set(r.daemon, [...(failing.get(r.daemon) ?? []), r.problem]);
    if (failing.size === 0) return;
    for (const d of o.daemons) failedRounds.set(d, failing.has(d) ? (failedRounds.get(d) ?? 0) + 1 : 0);
    const words = [...failing.keys()].map((d) => [d, daemonWords(o.marks, d)] as const);
    let explained = false;
    for (const [d, w] of words)
      if (w.length > 0 && (failedRounds.get(d) ?? 0) >= EARLY_ROUNDS && !(await o.passing?.(d, w))) explained = true;
    if (explained || Date.now() >= end) {
      const what = [...failing].map(([d, problems]) => `${d} does not serve it: ${problems.slice(0, 3).join("; ")}`);
      throw new NetservaError("unavailable", `the new config did not come up: ${what.join("; ")}${quoteWords(words)}`);
    }
    await delay(ROUND_GAP_MS);
  }
}
