// A key and its certificate replaced as one unit (the agent's identity, the controller's own).
// Each pair lives in its own generation directory (identity/<n>/<key> + <cert>), written aside,
// fsynced and renamed into place; one atomic rename of the `current` symlink then makes it live.
// The key and certificate names in the home are fixed symlinks through `current`, so readers of
// those paths see one pair or the other, never a key from one and a certificate from another.
// Start-up takes the newest pair whose key matches its certificate and repoints `current` at it.
import { randomBytes, X509Certificate, createPrivateKey } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  closeSync,
  fsyncSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { mkdir, open, readdir, rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { NetservaError } from "../errors.ts";
import { writePrivateFile, writePublicFile } from "./files.ts";

const GENERATIONS_KEPT = 2;

/** Whose pair: the file names in the home, and what to tell an operator when none matches. */
export interface PairNames {
  /** What the directory is, for messages ("agent home"). */
  home: string;
  key: string;
  cert: string;
  /** Appended to the refusal when no pair matches, e.g. how to enroll again. */
  remedy: string;
}

export interface IdentityPair {
  keyPem: string;
  certPem: string;
}

export interface LoadedPair extends IdentityPair {
  /** Generation directory the pair came from (0: the flat files of an older agent). */
  generation: number;
  /** What start-up had to repair, for the caller to report: empty on a clean home. */
  repairs: string[];
}

export interface PairLocation {
  root: string;
  names: PairNames;
  /** identity/ under the home: one directory per generation. */
  dir: string;
  /** The symlink naming the live generation. */
  current: string;
  key: string;
  cert: string;
}

export function pairLocation(root: string, names: PairNames): PairLocation {
  return {
    root,
    names,
    dir: join(root, "identity"),
    current: join(root, "current"),
    key: join(root, names.key),
    cert: join(root, names.cert),
  };
}

/** True when the private key is the one the certificate was issued for. */
export function pairMatches(pair: IdentityPair): boolean {
  try {
    return new X509Certificate(pair.certPem).checkPrivateKey(createPrivateKey(pair.keyPem));
  } catch {
    return false;
  }
}

function generations(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => /^[1-9][0-9]{0,9}$/.test(name))
    .map(Number)
    .sort((a, b) => b - a);
}

function readPair(dir: string, names: PairNames): IdentityPair | undefined {
  try {
    const pair = {
      keyPem: readFileSync(join(dir, names.key), "utf8"),
      certPem: readFileSync(join(dir, names.cert), "utf8"),
    };
    return pairMatches(pair) ? pair : undefined;
  } catch {
    return undefined;
  }
}

function currentGeneration(location: PairLocation): number | undefined {
  try {
    const target = readlinkSync(location.current);
    const match = /^identity\/([1-9][0-9]{0,9})$/.exec(target);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function isRegularFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

function syncDirectorySync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` by a symlink to `target` with one rename (a reader sees the old or the new). */
function swapSymlinkSync(path: string, target: string): void {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  symlinkSync(target, temp);
  renameSync(temp, path);
}

async function swapSymlink(path: string, target: string): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  await symlink(target, temp);
  try {
    await rename(temp, path);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The fixed links <key> -> current/<key> and <cert> -> current/<cert>. */
function linkFlatNamesSync(location: PairLocation): void {
  for (const [path, name] of [
    [location.cert, location.names.cert],
    [location.key, location.names.key],
  ] as const) {
    let target: string | undefined;
    try {
      target = readlinkSync(path);
    } catch {
      target = undefined;
    }
    if (target !== join("current", name)) swapSymlinkSync(path, join("current", name));
  }
}

/**
 * Writes a new pair as the next generation and makes it live with one rename; keeps the previous
 * generation as the fallback and removes older ones. Returns the new generation number.
 */
export async function writeIdentityPair(root: string, names: PairNames, pair: IdentityPair): Promise<number> {
  if (!pairMatches(pair)) throw new NetservaError("internal", "the private key does not match its certificate");
  const location = pairLocation(root, names);
  await mkdir(location.dir, { recursive: true, mode: 0o700 });
  const generation = (generations(location.dir)[0] ?? 0) + 1;
  const temp = join(location.dir, `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  await mkdir(temp, { mode: 0o700 });
  try {
    await writePrivateFile(join(temp, names.key), pair.keyPem);
    await writePublicFile(join(temp, names.cert), pair.certPem);
    await rename(temp, join(location.dir, String(generation)));
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
  await syncDirectory(location.dir);
  await swapSymlink(location.current, join("identity", String(generation)));
  linkFlatNamesSync(location);
  await syncDirectory(root);
  for (const old of generations(location.dir).slice(GENERATIONS_KEPT)) {
    await rm(join(location.dir, String(old)), { recursive: true, force: true });
  }
  for (const name of await readdir(location.dir)) {
    if (name.startsWith(".tmp-") && !name.startsWith(`.tmp-${process.pid}-`)) {
      await rm(join(location.dir, name), { recursive: true, force: true });
    }
  }
  return generation;
}

/**
 * The live pair: the generation `current` names when its key matches its certificate, else the
 * newest generation that matches (and `current` is repointed at it), else the flat key and
 * certificate files of an older layout (moved into generation 1). Refuses a home with no matching pair.
 */
export function loadIdentityPair(root: string, names: PairNames): LoadedPair {
  const location = pairLocation(root, names);
  const repairs: string[] = [];
  const live = currentGeneration(location);
  if (live !== undefined) {
    const pair = readPair(join(location.dir, String(live)), names);
    if (pair) {
      linkFlatNamesSync(location);
      return { ...pair, generation: live, repairs };
    }
    repairs.push(`generation ${live} has no matching key and certificate`);
  }
  for (const generation of generations(location.dir)) {
    if (generation === live) continue;
    const pair = readPair(join(location.dir, String(generation)), names);
    if (!pair) {
      repairs.push(`generation ${generation} has no matching key and certificate`);
      continue;
    }
    swapSymlinkSync(location.current, join("identity", String(generation)));
    linkFlatNamesSync(location);
    syncDirectorySync(root);
    repairs.push(`fell back to generation ${generation}`);
    return { ...pair, generation, repairs };
  }
  if (isRegularFile(location.key) && isRegularFile(location.cert)) {
    const pair = readPair(root, names);
    if (pair) {
      // A home from before generations: its flat pair becomes generation 1.
      const dir = join(location.dir, "1");
      mkdirSync(location.dir, { recursive: true, mode: 0o700 });
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { mode: 0o700 });
      writeFileDurable(join(dir, names.key), pair.keyPem, 0o600);
      writeFileDurable(join(dir, names.cert), pair.certPem, 0o644);
      syncDirectorySync(location.dir);
      swapSymlinkSync(location.current, join("identity", "1"));
      linkFlatNamesSync(location);
      syncDirectorySync(root);
      repairs.push(`moved ${names.key} and ${names.cert} into generation 1`);
      return { ...pair, generation: 1, repairs };
    }
    repairs.push(`${names.key} does not match ${names.cert}`);
  }
  throw new NetservaError(
    "failed_precondition",
    `${names.home} ${root} has no key that matches its certificate (${repairs.join("; ") || "no certificate"}): ${names.remedy}`,
  );
}

function writeFileDurable(path: string, data: string, mode: number): void {
  const fd = openSync(path, "wx", mode);
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
