// Mailbox passwords: generate (CSPRNG), hash in a Dovecot-verifiable scheme, verify. Hashes carry
// Dovecot's scheme prefix ("{SHA512-CRYPT}$6$…", "{ARGON2ID}$argon2id$…") so the vnode's
// lookup table can hand them to Dovecot as they are.
import { timingSafeEqual } from "node:crypto";
import { argon2idHash, argon2idVerify, isArgon2idHash } from "./argon2id.ts";
import { DEFAULT_ROUNDS, parseSha512Settings, sha512Crypt, sha512CryptNewInTurns } from "./sha512-crypt.ts";

export { generatePassword, PASSWORD_ALPHABET, MIN_GENERATED_LENGTH } from "./generate.ts";
export { sha512Crypt, sha512CryptNew, sha512CryptInTurns, parseSha512Settings } from "./sha512-crypt.ts";
export { HASH_COST_LIMITS, hashCostProblem } from "./hash-cost.ts";

export type PasswordScheme = "SHA512-CRYPT" | "ARGON2ID";
export const PASSWORD_SCHEMES: readonly PasswordScheme[] = ["SHA512-CRYPT", "ARGON2ID"];

export interface HashOptions {
  /** SHA512-CRYPT rounds (default 5000, Dovecot's default). */
  rounds?: number;
}

export async function hashPassword(
  password: string,
  scheme: PasswordScheme = "SHA512-CRYPT",
  options: HashOptions = {},
): Promise<string> {
  if (scheme === "ARGON2ID") return `{ARGON2ID}${await argon2idHash(password)}`;
  // In turns: a command hashing a password keeps its other I/O (the agent connection) moving.
  return `{SHA512-CRYPT}${await sha512CryptNewInTurns(password, options.rounds ?? DEFAULT_ROUNDS)}`;
}

const SHA512_HASH = /^\$6\$(?:rounds=[0-9]{1,10}\$)?[^$:\s]{0,16}\$[./0-9A-Za-z]{86}$/;

/**
 * The scheme of a stored hash in Dovecot's notation, or undefined when it is not one we write
 * and Dovecot reads. A bare "$6$…" (as NetServa's sysadm may hold) counts as SHA512-CRYPT.
 */
export function hashScheme(hash: string): PasswordScheme | undefined {
  const [prefix, body] = splitScheme(hash);
  if ((prefix === "SHA512-CRYPT" || prefix === "CRYPT" || prefix === undefined) && SHA512_HASH.test(body))
    return "SHA512-CRYPT";
  if (prefix === "ARGON2ID" && isArgon2idHash(body)) return "ARGON2ID";
  return undefined;
}

/** The hash in the form we store: "{SCHEME}…"; undefined when it is not a hash we accept. */
export function normalizeHash(hash: string): string | undefined {
  const scheme = hashScheme(hash);
  return scheme === undefined ? undefined : `{${scheme}}${splitScheme(hash)[1]}`;
}

function splitScheme(hash: string): [string | undefined, string] {
  const m = /^\{([A-Z0-9-]{1,32})\}(.*)$/s.exec(hash);
  return m ? [m[1], m[2] ?? ""] : [undefined, hash];
}

/** Constant-time check of `password` against a stored hash; false for unknown schemes. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const scheme = hashScheme(hash);
  const body = splitScheme(hash)[1];
  if (scheme === "ARGON2ID") return argon2idVerify(password, body);
  if (scheme !== "SHA512-CRYPT") return false;
  const settings = parseSha512Settings(body);
  if (!settings) return false;
  const computed = Buffer.from(sha512Crypt(password, settings));
  const expected = Buffer.from(body);
  return computed.length === expected.length && timingSafeEqual(computed, expected);
}
