// SHA-512 crypt ("$6$"), written from Ulrich Drepper's specification "Unix crypt using SHA-256
// and SHA-512" (the scheme glibc crypt(3) and Dovecot's SHA512-CRYPT implement). Pure TS over
// node:crypto's SHA-512, no native addon; the async form runs the rounds on hash-wasm's
// WebAssembly SHA-512 (see runRoundsWasm). Rounds default to 5000 (the spec's and Dovecot's
// default, written without a "rounds=" field); the spec clamps rounds to 1000..999,999,999.
import { createHash } from "node:crypto";
import { createSHA512 } from "hash-wasm";
import type { IHasher } from "hash-wasm";
import { randomString } from "./generate.ts";
import { hashOnThread } from "./hash-worker.ts";

export const CRYPT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
export const DEFAULT_ROUNDS = 5000;
const MIN_ROUNDS = 1000;
const MAX_ROUNDS = 999_999_999;
const MAX_SALT = 16;

/** Byte order of the final 64-byte digest in the output, three bytes per four characters. */
const ORDER: ReadonlyArray<readonly [number, number, number]> = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
];

function b64(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let out = "";
  for (let i = 0; i < n; i++) {
    out += CRYPT_ALPHABET[w & 0x3f];
    w >>>= 6;
  }
  return out;
}

function sha512(...parts: Buffer[]): Buffer {
  const h = createHash("sha512");
  for (const part of parts) h.update(part);
  return h.digest();
}

/** `length` bytes of `block` repeated (the spec's P and S sequences). */
function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

/** The spec's rounds `from` .. `to` - 1 over the running digest `c`. */
function runRounds(c: Buffer, p: Buffer, s: Buffer, from: number, to: number): Buffer {
  for (let i = from; i < to; i++) {
    const h = createHash("sha512");
    h.update(i & 1 ? p : c);
    if (i % 3) h.update(s);
    if (i % 7) h.update(p);
    h.update(i & 1 ? c : p);
    c = h.digest();
  }
  return c;
}

/** The digest before the rounds (c) and the P and S sequences the rounds mix in. */
function setup(key: Buffer, salt: Buffer): { c: Buffer; p: Buffer; s: Buffer } {
  const b = sha512(key, salt, key);
  const a = createHash("sha512").update(key).update(salt);
  let n = key.length;
  for (; n > 64; n -= 64) a.update(b);
  a.update(b.subarray(0, n));
  for (n = key.length; n > 0; n >>= 1) a.update(n & 1 ? b : key);
  const c = a.digest();
  const p = repeatTo(sha512(...Array.from({ length: key.length }, () => key)), key.length);
  const ds = createHash("sha512");
  for (let i = 0; i < 16 + (c[0] ?? 0); i++) ds.update(salt);
  const s = repeatTo(ds.digest(), salt.length);
  return { c, p, s };
}

function digest(key: Buffer, salt: Buffer, rounds: number): Buffer {
  const { c, p, s } = setup(key, salt);
  return runRounds(c, p, s, 0, rounds);
}

/**
 * One WebAssembly SHA-512 for the process. Safe to share between hashes running in turns: each
 * round's init/update/digest runs without a turn in between, so no two digests interleave.
 */
let wasmSha512: Promise<IHasher> | undefined;
function wasmHasher(): Promise<IHasher> {
  wasmSha512 ??= createSHA512().catch((error: unknown) => {
    wasmSha512 = undefined; // a later hash tries again rather than failing for ever
    throw error;
  });
  return wasmSha512;
}

/**
 * runRounds on the WebAssembly SHA-512, each round's input laid out in one reused buffer: one
 * call into the module per part costs more than the compression itself. node:crypto spends
 * most of its ~3 us per round making a Hash object and a Buffer; this takes ~1 us (measured:
 * 5,000 rounds in 8.8 ms of CPU against 17.1 ms with createHash, on a loaded 2-core machine).
 */
function runRoundsWasm(h: IHasher, c0: Uint8Array, p: Buffer, s: Buffer, from: number, to: number): Uint8Array {
  const buf = new Uint8Array(2 * p.length + s.length + 64);
  let c = c0;
  for (let i = from; i < to; i++) {
    let n = 0;
    buf.set(i & 1 ? p : c, n);
    n += i & 1 ? p.length : c.length;
    if (i % 3) {
      buf.set(s, n);
      n += s.length;
    }
    if (i % 7) {
      buf.set(p, n);
      n += p.length;
    }
    buf.set(i & 1 ? c : p, n);
    n += i & 1 ? c.length : p.length;
    c = h.init().update(buf.subarray(0, n)).digest("binary");
  }
  return c;
}

/**
 * Rounds between two turns of the event loop in the async form: a default-cost hash (~6 ms of
 * CPU) in one turn, a costlier one (rounds= up to 50,000) in turns of that size. Turns every 500
 * rounds let a controller serving 1,000 vnodes run ~200 health reports a second in between,
 * which stretched addvmail's hash from ~11 to ~25 ms (bench-fleet, quiet); one turn of ~6 ms is
 * within the loop's p99 delay there (28 ms).
 */
const ROUNDS_PER_TURN = 5000;

/**
 * The same digest, giving the event loop a turn every ROUNDS_PER_TURN rounds: I/O started
 * before it (a TLS handshake to the agent) makes progress while the password is hashed.
 */
async function digestInTurns(key: Buffer, salt: Buffer, rounds: number): Promise<Buffer> {
  const h = await wasmHasher();
  return digestWasmInTurns(h, key, salt, rounds, ROUNDS_PER_TURN);
}

async function digestWasmInTurns(
  h: IHasher,
  key: Buffer,
  salt: Buffer,
  rounds: number,
  perTurn: number,
): Promise<Buffer> {
  const { p, s, c: first } = setup(key, salt);
  let c: Uint8Array = first;
  for (let i = 0; i < rounds; i += perTurn) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    c = runRoundsWasm(h, c, p, s, i, Math.min(rounds, i + perTurn));
  }
  return Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

export interface Sha512CryptSettings {
  salt: string;
  rounds: number;
  /** Whether "rounds=N$" is written (it is when given explicitly, as glibc does). */
  explicitRounds: boolean;
}

/** Parses "$6$[rounds=N$]salt[$hash]" (the hash part is ignored). */
export function parseSha512Settings(setting: string): Sha512CryptSettings | undefined {
  const m = /^\$6\$(?:rounds=([0-9]{1,10})\$)?([^$]*)/.exec(setting);
  if (!m) return undefined;
  const rounds = m[1] === undefined ? DEFAULT_ROUNDS : Math.min(MAX_ROUNDS, Math.max(MIN_ROUNDS, Number(m[1])));
  return { salt: (m[2] ?? "").slice(0, MAX_SALT), rounds, explicitRounds: m[1] !== undefined };
}

function encode(c: Buffer, settings: Sha512CryptSettings): string {
  let out = "";
  for (const [x, y, z] of ORDER) out += b64(c[x] ?? 0, c[y] ?? 0, c[z] ?? 0, 4);
  out += b64(0, 0, c[63] ?? 0, 2);
  const head = settings.explicitRounds ? `$6$rounds=${settings.rounds}$` : "$6$";
  return `${head}${settings.salt}$${out}`;
}

/** crypt(3) with a "$6$" setting: returns "$6$[rounds=N$]salt$hash". */
export function sha512Crypt(password: string, settings: Sha512CryptSettings): string {
  return encode(digest(Buffer.from(password, "utf8"), Buffer.from(settings.salt, "utf8"), settings.rounds), settings);
}

/** sha512Crypt, letting other work of the process run between slices of the rounds. */
export async function sha512CryptInTurns(password: string, settings: Sha512CryptSettings): Promise<string> {
  const key = Buffer.from(password, "utf8");
  return encode(await digestInTurns(key, Buffer.from(settings.salt, "utf8"), settings.rounds), settings);
}

/** sha512Crypt on a given WebAssembly SHA-512, all rounds at once: the hash thread's form, where
 *  nothing else waits for the event loop (hash-thread.ts). */
export async function sha512CryptOn(h: IHasher, password: string, settings: Sha512CryptSettings): Promise<string> {
  const key = Buffer.from(password, "utf8");
  const salt = Buffer.from(settings.salt, "utf8");
  return encode(await digestWasmInTurns(h, key, salt, settings.rounds, Number.MAX_SAFE_INTEGER), settings);
}

const newSettings = (rounds: number): Sha512CryptSettings => ({
  salt: randomString(CRYPT_ALPHABET, MAX_SALT),
  rounds,
  explicitRounds: rounds !== DEFAULT_ROUNDS,
});

/** A fresh "$6$" hash with a 16-character CSPRNG salt. */
export function sha512CryptNew(password: string, rounds = DEFAULT_ROUNDS): string {
  return sha512Crypt(password, newSettings(rounds));
}

/**
 * sha512CryptNew off the event loop: on the hash thread when one is running (serve starts it,
 * hash-worker.ts), else here in turns (see sha512CryptInTurns).
 */
export function sha512CryptNewInTurns(password: string, rounds = DEFAULT_ROUNDS): Promise<string> {
  const settings = newSettings(rounds);
  // A thread that died mid-hash (hash-worker.ts rejects what it held): hashed here instead.
  const threaded = hashOnThread(password, settings)?.catch(() => sha512CryptInTurns(password, settings));
  return threaded ?? sha512CryptInTurns(password, settings);
}
