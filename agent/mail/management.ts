// Hands off by default: whether this agent may manage the vnode's mail. A vnode whose Postfix or
// Dovecot configuration was not written by us (a NetServa vnode, Debian's stock main.cf) or that
// holds a NetServa sysadm DB starts unmanaged: the agent reports, renders nothing, changes
// nothing, until the operator switches it (`vnode manage`) or adopts it (`vnode adopt`). The
// decision, once made explicitly, is kept in <state>/management.json and wins over detection
// (a rolled-back adoption leaves our manifest behind but must stay unmanaged).
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { NetservaError } from "../../common/errors.ts";
import { writeFileAtomic } from "../apply/atomic-write.ts";
import type { VnodePaths } from "../paths.ts";
import { readManifest } from "./manifest.ts";

export interface Management {
  readonly managed: boolean;
  /** Why unmanaged (empty when managed). */
  readonly reason: string;
}

/** NetServa 3.0's sysadm DB, relative to the vnode's root. */
export const NETSERVA_SYSADM_DB = "var/lib/sqlite/sysadm/sysadm.db";

export const managementFile = (paths: VnodePaths): string => join(paths.stateDir, "management.json");
export const keptAsideDir = (paths: VnodePaths): string => join(paths.stateDir, "kept-aside");

/** Daemon files a first apply overwrites: what another tool may have written before us. */
export function foreignCandidates(paths: VnodePaths): string[] {
  return [paths.postfixMainCf, paths.postfixMasterCf, paths.dovecotConf, paths.dovecotSqlConf];
}

function readDecision(paths: VnodePaths): Management | undefined {
  try {
    const data = JSON.parse(readFileSync(managementFile(paths), "utf8")) as { managed?: unknown; reason?: unknown };
    if (typeof data.managed !== "boolean") return undefined;
    return { managed: data.managed, reason: typeof data.reason === "string" ? data.reason : "" };
  } catch {
    return undefined;
  }
}

/**
 * The vnode's management now: the explicit decision if one was recorded; else managed when we
 * applied a config before (our manifest lists files) or nothing foreign is there; else unmanaged,
 * naming what was found.
 */
export function detectManagement(paths: VnodePaths, sysadmDb: string): Management {
  const decided = readDecision(paths);
  if (decided) return decided;
  if (Object.keys(readManifest(paths.manifest).files).length > 0) return { managed: true, reason: "" };
  // An apply of ours that a crash interrupted (its undo journal is there): the files are ours,
  // half-written, and the mail host's start-up recovery finishes or undoes them.
  if (existsSync(paths.backupDir) && readdirSync(paths.backupDir).length > 0) return { managed: true, reason: "" };
  const found = [paths.postfixMainCf, paths.dovecotConf]
    .filter((f) => existsSync(f))
    .map((f) => `${f} was not written by netserva-mail`);
  if (existsSync(sysadmDb)) found.push(`a NetServa sysadm database is at ${sysadmDb}`);
  if (found.length === 0) return { managed: true, reason: "" };
  return { managed: false, reason: `${found.join("; ")}: run \`vnode manage\` or \`vnode adopt\`` };
}

/** The state dir without locking the daemons out of its parents (a recursive mkdir would give
 * /var and /var/lib its own restrictive mode; Postfix's data_directory lives beside it). */
function ensureStateDir(paths: VnodePaths): void {
  mkdirSync(dirname(paths.stateDir), { recursive: true, mode: 0o755 });
  mkdirSync(paths.stateDir, { recursive: true, mode: 0o750 });
}

export function recordManagement(paths: VnodePaths, m: Management): void {
  ensureStateDir(paths);
  writeFileAtomic(managementFile(paths), {
    content: `${JSON.stringify({ managed: m.managed, reason: m.reason, at: new Date().toISOString() }, null, 2)}\n`,
    mode: 0o600,
  });
}

/** Existing daemon files the first managed apply would overwrite (ours excluded). */
export function wouldOverwrite(paths: VnodePaths): string[] {
  const ours = readManifest(paths.manifest).files;
  return foreignCandidates(paths).filter((f) => existsSync(f) && !(f in ours));
}

/**
 * Copies the files about to be overwritten under kept-aside/<their absolute path>, once: a later
 * switch never replaces what was kept (the first originals are the ones to go back to). Returns
 * the directory.
 */
export function keepAside(paths: VnodePaths, files: readonly string[]): string {
  const dir = keptAsideDir(paths);
  ensureStateDir(paths);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // What each candidate was before the switch (a file that was not there is removed again on
  // rollback), written once like the copies.
  const index = join(dir, INDEX);
  if (!existsSync(index)) {
    const entries: KeptEntry[] = foreignCandidates(paths).map((path) => {
      if (!existsSync(path)) return { path, existed: false, sha256: "", mode: 0, uid: 0, gid: 0 };
      const st = statSync(path);
      return { path, existed: true, sha256: sha256Of(path), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    });
    writeFileAtomic(index, { content: `${JSON.stringify(entries, null, 2)}\n`, mode: 0o600 });
  }
  for (const file of files) {
    const target = join(dir, file);
    if (existsSync(target)) continue;
    mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
    copyFileSync(file, target);
  }
  return dir;
}

const INDEX = "index.json";

interface KeptEntry {
  path: string;
  existed: boolean;
  sha256: string;
  mode: number;
  uid: number;
  gid: number;
}

export interface RestoredFile {
  readonly path: string;
  /** Of the file now ("" when removed). */
  readonly sha256: string;
  readonly removed: boolean;
}

const sha256Of = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");

/** The kept-aside index, every copy present with its recorded digest; refuses otherwise. */
export function checkKeptAside(paths: VnodePaths): KeptEntry[] {
  const dir = keptAsideDir(paths);
  let entries: KeptEntry[];
  try {
    entries = JSON.parse(readFileSync(join(dir, INDEX), "utf8")) as KeptEntry[];
  } catch {
    throw new NetservaError(
      "failed_precondition",
      `nothing was kept aside on this vnode (${join(dir, INDEX)} is missing): it was not switched by \`vnode adopt\` or \`vnode manage\`, or was rolled back already; nothing was changed`,
    );
  }
  for (const e of entries) {
    if (!e.existed) continue;
    const copy = join(dir, e.path);
    if (!existsSync(copy) || sha256Of(copy) !== e.sha256)
      throw new NetservaError(
        "failed_precondition",
        `the kept-aside copy of ${e.path} is missing or changed: nothing was changed`,
      );
  }
  return entries;
}

/**
 * Adoption's rollback: every file kept aside at the switch goes back exactly (content, mode,
 * owner; each renamed into place), a candidate that did not exist then is removed, and the
 * kept-aside copies go once all are back (a later switch keeps the files as they are then). A
 * copy whose digest is not the one recorded is refused before anything is written.
 */
export function restoreKeptAside(paths: VnodePaths): RestoredFile[] {
  const dir = keptAsideDir(paths);
  const entries = checkKeptAside(paths);
  const out: RestoredFile[] = [];
  for (const e of entries) {
    if (!e.existed) {
      if (existsSync(e.path)) rmSync(e.path, { force: true });
      out.push({ path: e.path, sha256: "", removed: true });
      continue;
    }
    // Byte for byte: the copy is copied back (then renamed into place), not re-encoded.
    const tmp = `${e.path}.ns-restore`;
    copyFileSync(join(dir, e.path), tmp);
    chownSync(tmp, e.uid, e.gid);
    chmodSync(tmp, e.mode);
    renameSync(tmp, e.path);
    out.push({ path: e.path, sha256: sha256Of(e.path), removed: false });
  }
  rmSync(dir, { recursive: true, force: true });
  // None of the daemon files is ours any more: a later switch is a takeover again (mail-host.ts).
  rmSync(paths.manifest, { force: true });
  return out;
}

/** Whether a kept-aside copy of `file` exists (rollback). */
export function keptAside(paths: VnodePaths, file: string): string | undefined {
  const copy = join(keptAsideDir(paths), file);
  return existsSync(copy) && statSync(copy).isFile() ? copy : undefined;
}
