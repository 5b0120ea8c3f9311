// Generated mailbox passwords: drawn from the OS CSPRNG with crypto.randomInt (rejection
// sampling, so no modulo bias) over an alphabet without look-alikes (no 0/O/o, 1/l/I), so a
// password read aloud or off a screen is typed right the first time. 55 symbols × 20 = ~115 bits.
import { randomInt } from "node:crypto";

export const PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
export const MIN_GENERATED_LENGTH = 16;
export const MAX_GENERATED_LENGTH = 256;

export function generatePassword(length = 20): string {
  if (!Number.isSafeInteger(length) || length < MIN_GENERATED_LENGTH || length > MAX_GENERATED_LENGTH) {
    throw new RangeError(
      `password length must be ${MIN_GENERATED_LENGTH}..${MAX_GENERATED_LENGTH}, got ${String(length)}`,
    );
  }
  let out = "";
  for (let i = 0; i < length; i++) out += PASSWORD_ALPHABET[randomInt(PASSWORD_ALPHABET.length)];
  return out;
}

/** Random characters from `alphabet` (a salt, a token), same unbiased source. */
export function randomString(alphabet: string, length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += alphabet[randomInt(alphabet.length)];
  return out;
}
