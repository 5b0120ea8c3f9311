// SHA-512 crypt ("$6$"), written from Ulrich Drepper's specification "Unix crypt using SHA-256
// and SHA-512" (the scheme glibc crypt(3) and Dovecot's SHA512-CRYPT implement). Pure TS over
// node:crypto's SHA-512, no native addon; the async form runs the rounds in WebAssembly of our
// own (sha512-rounds.wat: SHA-512 and the round loop in one call). Rounds default to 5000 (the
// spec's and Dovecot's default, written without a "rounds=" field); the spec clamps rounds to
// 1000..999,999,999.
import { createHash } from "node:crypto";
import { randomString } from "./generate.ts";
import { hashOnThread } from "./hash-worker.ts";
import { SHA512_ROUNDS_WASM } from "./sha512-rounds-wasm.ts";

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

/** floor(cbrt(n)) for a BigInt, by Newton's method from a floating-point start. */
function cubeRoot(n: bigint): bigint {
  let x = BigInt(Math.floor(Math.cbrt(Number(n))));
  for (;;) {
    const next = (2n * x + n / (x * x)) / 3n;
    if (next === x || next === x + 1n || next === x - 1n) {
      x = next;
      break;
    }
    x = next;
  }
  while ((x + 1n) ** 3n <= n) x += 1n;
  while (x ** 3n > n) x -= 1n;
  return x;
}

/** SHA-512's 80 round constants, made as FIPS 180-4 defines them (the first 64 bits of the
 *  fractional parts of the cube roots of the first 80 primes) rather than typed in. */
function roundConstants(): bigint[] {
  const primes: bigint[] = [];
  for (let n = 2n; primes.length < 80; n++) if (primes.every((p) => n % p !== 0n)) primes.push(n);
  return primes.map((p) => cubeRoot(p << 192n) & 0xffffffffffffffffn);
}

/** Where sha512-rounds.wat keeps C, S and P, and the longest P it has room for. */
const AT_C = 1600;
const AT_S = 1664;
const AT_P = 1680;
const MAX_P = 4096;

interface RoundsModule {
  memory: Uint8Array;
  rounds(plen: number, slen: number, from: number, to: number): void;
}

/** The part of the WebAssembly global used here (the project's TypeScript lib has no DOM types). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The rounds module, instantiated once per thread (~1 KB, synchronously). */
let roundsModule: RoundsModule | undefined;
function loadRounds(): RoundsModule {
  if (roundsModule) return roundsModule;
  const instance = new wasm.Instance(new wasm.Module(Buffer.from(SHA512_ROUNDS_WASM, "base64")));
  const memory = instance.exports["memory"] as { buffer: ArrayBuffer };
  const view = new DataView(memory.buffer);
  roundConstants().forEach((k, i) => view.setBigUint64(i * 8, k, true));
  const rounds = instance.exports["rounds"] as RoundsModule["rounds"];
  roundsModule = { memory: new Uint8Array(memory.buffer), rounds };
  return roundsModule;
}

/**
 * runRounds in WebAssembly: all rounds `from` .. `to` - 1 in one call (~0.6 us a round against
 * ~3 us with createHash). Each call writes C, P and S afresh, so hashes running in turns never
 * see each other's state. A P longer than the module has room for takes the node:crypto path.
 */
function runRoundsWasm(c: Buffer, p: Buffer, s: Buffer, from: number, to: number): Buffer {
  if (p.length > MAX_P) return runRounds(c, p, s, from, to);
  const m = loadRounds();
  m.memory.set(c, AT_C);
  m.memory.set(s, AT_S);
  m.memory.set(p, AT_P);
  m.rounds(p.length, s.length, from, to);
  return Buffer.from(m.memory.subarray(AT_C, AT_C + 64));
}

/**
 * Rounds between two turns of the event loop in the async form: a default-cost hash (~3 ms of
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
  const { p, s, c: first } = setup(key, salt);
  let c = first;
  for (let i = 0; i < rounds; i += ROUNDS_PER_TURN) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    c = runRoundsWasm(c, p, s, i, Math.min(rounds, i + ROUNDS_PER_TURN));
  }
  return c;
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

/** sha512Crypt with the rounds in WebAssembly, all at once: the hash thread's form, where nothing
 *  else waits for the event loop (hash-thread.ts). */
export function sha512CryptWhole(password: string, settings: Sha512CryptSettings): string {
  const key = Buffer.from(password, "utf8");
  const salt = Buffer.from(settings.salt, "utf8");
  const { c, p, s } = setup(key, salt);
  return encode(runRoundsWasm(c, p, s, 0, settings.rounds), settings);
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
