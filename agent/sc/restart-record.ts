// What health says about a daemon that died and was started again: how often since the agent
// started, when last and why. Under systemd the death lasts only the unit's RestartSec, usually
// between two health reports; this record is what lets an operator still see it.
import { constants } from "node:os";

export interface RestartRecord {
  readonly count: number;
  readonly lastAtMs: number;
  readonly lastReason: string;
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/**
 * How a main process ended, in words, from systemd's ExecMainCode (CLD_EXITED 1, CLD_KILLED 2,
 * CLD_DUMPED 3) and ExecMainStatus, or the journal's `code=killed, status=9/KILL`.
 */
export function exitReason(code: string, status: number): string {
  const signal = (): string => {
    const name = SIGNAL_NAMES.get(status);
    return `signal ${status}${name ? ` (${name})` : ""}`;
  };
  switch (code) {
    case "1":
    case "exited":
      return `main process exited with status ${status}`;
    case "2":
    case "killed":
      return `main process killed by ${signal()}`;
    case "3":
    case "dumped":
      return `main process dumped core on ${signal()}`;
    default:
      return `main process ended (code ${code}, status ${status})`;
  }
}

/** The last `Main process exited, code=…, status=…` line of a unit's journal (`journalctl -o cat`), in words. */
export function lastExitFromJournal(journal: string): string | undefined {
  let found: string | undefined;
  for (const m of journal.matchAll(/Main process exited, code=(\w+), status=(\d+)/g))
    found = exitReason(m[1] ?? "", Number(m[2]));
  return found;
}
