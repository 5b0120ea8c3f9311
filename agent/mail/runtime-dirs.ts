// Directories the daemons need before they start, with the owners Postfix and Dovecot insist on
// (data_directory owned by postfix; the lookup DB's directory readable by the postfix group).
import { chmodSync, chownSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import type { VnodePaths } from "../paths.ts";
import { lookupGroupId, lookupUser } from "./vmail-user.ts";

export function ensureRuntimeDirs(paths: VnodePaths): void {
  const postfix = lookupUser("postfix");
  const postfixGid = lookupGroupId("postfix");
  if (!postfix || postfixGid === undefined) throw new Error("the postfix user/group is missing: is Postfix installed?");
  const dir = (path: string, mode: number, uid = 0, gid = 0): void => {
    // Parents get 0755 (recursive mkdir would give them `mode`, locking the daemons out).
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    mkdirSync(path, { recursive: true, mode });
    chownSync(path, uid, gid);
    chmodSync(path, mode);
  };
  dir(paths.postfixQueueDir, 0o755);
  dir(paths.postfixDataDir, 0o700, postfix.uid, postfix.gid);
  dir(paths.postfixLogDir, 0o755);
  dir(paths.dovecotBaseDir, 0o755);
  dir(paths.dovecotStateDir, 0o750);
  dir(paths.stateDir, 0o750, 0, postfixGid);
  dir(paths.tlsDir, 0o755);
  dir(paths.mailRoot, 0o755);
}
