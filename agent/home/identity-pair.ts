// The agent's key and certificate are replaced as one unit. Each pair lives in its own generation
// directory (identity/<n>/agent.key + agent.crt), written aside, fsynced and renamed into place;
// one atomic rename of the `current` symlink then makes it live. agent.key and agent.crt in the
// home are fixed symlinks through `current`, so readers of those paths see one pair or the other,
// never a key from one and a certificate from another. Start-up takes the newest pair whose key
// matches its certificate and repoints `current` at it.
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
import { NetservaError } from "../../common/errors.ts";
import { writePrivateFile, writePublicFile } from "../../common/pki/files.ts";

const KEY = "agent.key";
const CERT = "agent.crt";
const GENERATIONS_KEPT = 2;

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
  /** identity/ under the home: one directory per generation. */
  dir: string;
  /** The symlink naming the live generation. */
  current: string;
  key: string;
  cert: string;
}

export function pairLocation(root: string): PairLocation {
  return {
    root,
    dir: join(root, "identity"),
    current: join(root, "current"),
    key: join(root, KEY),
    cert: join(root, CERT),
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

function readPair(dir: string): IdentityPair | undefined {
  try {
    const pair = { keyPem: readFileSync(join(dir, KEY), "utf8"), certPem: readFileSync(join(dir, CERT), "utf8") };
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

/** The fixed links agent.key -> current/agent.key and agent.crt -> current/agent.crt. */
function linkFlatNamesSync(location: PairLocation): void {
  for (const [path, name] of [
    [location.cert, CERT],
    [location.key, KEY],
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
export async function writeIdentityPair(root: string, pair: IdentityPair): Promise<number> {
  if (!pairMatches(pair)) throw new NetservaError("internal", "the private key does not match its certificate");
  const location = pairLocation(root);
  await mkdir(location.dir, { recursive: true, mode: 0o700 });
  const generation = (generations(location.dir)[0] ?? 0) + 1;
  const temp = join(location.dir, `.tmp-${process.pid}-${randomBytes(6).toString("hex")}`);
  await mkdir(temp, { mode: 0o700 });
  try {
    await writePrivateFile(join(temp, KEY), pair.keyPem);
    await writePublicFile(join(temp, CERT), pair.certPem);
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
 * newest generation that matches (and `current` is repointed at it), else the flat agent.key and
 * agent.crt an older agent wrote (moved into generation 1). Refuses a home with no matching pair.
 */
export function loadIdentityPair(root: string): LoadedPair {
  const location = pairLocation(root);
  const repairs: string[] = [];
  const live = currentGeneration(location);
  if (live !== undefined) {
    const pair = readPair(join(location.dir, String(live)));
    if (pair) {
      linkFlatNamesSync(location);
      return { ...pair, generation: live, repairs };
    }
    repairs.push(`generation ${live} has no matching key and certificate`);
  }
  for (const generation of generations(location.dir)) {
    if (generation === live) continue;
    const pair = readPair(join(location.dir, String(generation)));
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
    const pair = readPair(root);
    if (pair) {
      // An agent from before generations: its flat pair becomes generation 1.
      const dir = join(location.dir, "1");
      mkdirSync(location.dir, { recursive: true, mode: 0o700 });
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { mode: 0o700 });
      writeFileDurable(join(dir, KEY), pair.keyPem, 0o600);
      writeFileDurable(join(dir, CERT), pair.certPem, 0o644);
      syncDirectorySync(location.dir);
      swapSymlinkSync(location.current, join("identity", "1"));
      linkFlatNamesSync(location);
      syncDirectorySync(root);
      repairs.push("moved agent.key and agent.crt into generation 1");
      return { ...pair, generation: 1, repairs };
    }
    repairs.push("agent.key does not match agent.crt");
  }
  throw new NetservaError(
    "failed_precondition",
    `agent home ${root} has no key that matches its certificate (${repairs.join("; ") || "no certificate"}): ` +
      `enroll again with a new join token (\`netserva-mail agent enroll --home ${root} …\`)`,
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
