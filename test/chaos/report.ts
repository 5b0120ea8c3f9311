// The fault report: every fault test records what it injected and what came out, one row per
// scenario. Rows go to the test log always, and to $NETSERVA_CHAOS_REPORT (JSON lines) when
// scripts/chaos runs the suites, which prints them as one table. Seconds are observations for
// the table, never assertions.
import { appendFileSync } from "node:fs";

export interface ChaosOutcome {
  /** What was injected: "agent SIGKILL", "reload fails on the daemon", "PostgreSQL stopped", … */
  readonly fault: string;
  /** Where: the apply step, the daemon, the link, the filesystem. */
  readonly where: string;
  /** How many times it was injected in this row. */
  readonly times: number;
  /** What the vnode ran afterwards ("old", "new", "old or new" for mixed rows, "-" when not a config fault). */
  readonly config: string;
  /** SMTP accepted and IMAP logged in afterwards (or throughout, for mail-flow faults). */
  readonly mailAccepted: boolean;
  /** The controller brought every vnode to the desired generation afterwards. */
  readonly converged: boolean;
  /** Worst seconds from the fault's end to converged (observed, not asserted). */
  readonly secondsToConverge?: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly note?: string;
}

/** The long variants (`scripts/chaos --long`): more kill points, longer cuts, bigger soaks. */
export const chaosLong = process.env["NETSERVA_CHAOS_LONG"] === "1";

/** Chosen by scripts/chaos (NETSERVA_CHAOS_SCALE=full): the full kill-point matrix instead of one per step. */
export const chaosFull = process.env["NETSERVA_CHAOS_SCALE"] === "full" || chaosLong;

export function recordChaos(o: ChaosOutcome): void {
  const line = JSON.stringify(o);
  console.log(`chaos: ${line}`);
  const file = process.env["NETSERVA_CHAOS_REPORT"];
  if (file) appendFileSync(file, `${line}\n`);
}
