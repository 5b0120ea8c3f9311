// `postfix check` also walks the live queue (postfix-script check-warn: `find` over incoming,
// active, deferred … for ownership). With mail flowing, a queue file can be delivered and removed
// between find's readdir and its stat: find then says "No such file or directory" on stderr and
// `! -user postfix` matches the vanished file ("not owned by postfix"). That is the queue moving,
// not the staged config, and refusing a config for it would fail an operator's change at random
// under load. Only lines naming a path inside the queue directory that no longer exists are
// dropped: a file that is really misowned, or any other complaint, still fails the check.
import { existsSync } from "node:fs";
import { sep } from "node:path";

const VANISHED = /^find: ['‘](.+)['’]: No such file or directory$/;
const MISOWNED = /warning: not owned by [^:]+: (\S+)$/;

/** The lines of `said` that are not the live queue moving under `postfix check`. */
export function withoutQueueChurn(
  said: string,
  queueDirectory: string,
  exists: (path: string) => boolean = existsSync,
): string {
  const queue = queueDirectory.replace(/\/+$/, "") + sep;
  return said
    .split("\n")
    .filter((line) => {
      const path = VANISHED.exec(line.trim())?.[1] ?? MISOWNED.exec(line.trim())?.[1];
      return path === undefined || !path.startsWith(queue) || exists(path);
    })
    .join("\n")
    .trim();
}
