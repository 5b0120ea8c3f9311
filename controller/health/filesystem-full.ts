// When a vnode's filesystem counts as full, and what that stops, by what it holds. Postfix itself
// refuses new mail (452 4.3.1 "Insufficient system storage") once its queue filesystem has less
// than 1.5 × message_size_limit free (15,360,000 bytes with the default limit the agent keeps);
// a maildir write of an ordinary message needs a few MB. So: full below 16 MiB or 1% free, or
// with no inode left. The alert rule NetservaFilesystemFull uses the same numbers.
import type { FsRoleJson } from "./health-json.ts";

export const FULL_BELOW_BYTES = 16 * 1024 * 1024;
export const FULL_BELOW_RATIO = 0.01;

const STOPS: Record<string, string> = {
  mail: "delivery to mailboxes is deferred",
  queue: "Postfix answers 452 4.3.1 to new mail",
  config: "config changes are refused",
  state: "config and mailbox changes are refused",
};

export function isFull(f: FsRoleJson): boolean {
  return (
    f.availableBytes < FULL_BELOW_BYTES ||
    f.availableBytes < FULL_BELOW_RATIO * f.sizeBytes ||
    (f.inodes > 0 && f.freeInodes === 0)
  );
}

/** "filesystem of /r/srv (mail) is full: 0 bytes free; delivery to mailboxes is deferred". */
export function fullProblem(f: FsRoleJson): string {
  const where = f.roles.map((r, i) => `${f.rolePaths[i] ?? f.path} (${r})`).join(", ");
  const free = f.inodes > 0 && f.freeInodes === 0 ? "no inode free" : `${f.availableBytes} bytes free`;
  // "state" (staging, journal, lookup DB) already stops config changes: say it once.
  const roles = f.roles.includes("state") ? f.roles.filter((r) => r !== "config") : f.roles;
  const stops = [...new Set(roles.map((r) => STOPS[r]).filter((s): s is string => s !== undefined))];
  return `filesystem of ${where} is full: ${free}; ${stops.join("; ")}`;
}
