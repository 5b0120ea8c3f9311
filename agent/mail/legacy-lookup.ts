// Earlier agents kept the lookup DB (rollback journal) directly in the state dir. It now lives in
// its own directory (WAL readers need to write there); move an old one over once, with a hot
// journal if one was left by a crash, before the store opens it. Daemons still configured with
// the old path are re-pointed by the next apply (the rendered maps change).
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import type { VnodePaths } from "../paths.ts";

export function moveLegacyLookupDb(paths: VnodePaths): boolean {
  const legacy = join(paths.stateDir, "sysadm.db");
  if (legacy === paths.lookupDb || !existsSync(legacy) || existsSync(paths.lookupDb)) return false;
  mkdirSync(dirname(paths.lookupDb), { recursive: true, mode: 0o750 });
  // Journal first: a DB without its hot journal would be opened half-written.
  if (existsSync(`${legacy}-journal`)) renameSync(`${legacy}-journal`, `${paths.lookupDb}-journal`);
  renameSync(legacy, paths.lookupDb);
  return true;
}
