// The file layout the apply crash test and its child process share.
import { join } from "node:path";
import type { FileSet } from "../../agent/apply/file-spec.ts";

export function crashFixture(dir: string) {
  const live = ["etc/postfix/main.cf", "etc/postfix/master.cf", "etc/dovecot/dovecot.conf"].map((p) => join(dir, p));
  return {
    live,
    manifest: join(dir, "state/manifest.json"),
    lookupDb: join(dir, "state/lookup/sysadm.db"),
    stagingDir: join(dir, "state/staging"),
    backupDir: join(dir, "state/backup"),
    files: (content: string): FileSet =>
      new Map(live.map((path, i) => [path, { content: `${content} ${i}\n`, mode: 0o640 }])),
  };
}
