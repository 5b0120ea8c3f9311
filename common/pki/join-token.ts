// One-time join tokens, modelled on kubeadm's bootstrap tokens.
//
//   token (what the controller stores by id, shown once):   <id>.<secret>
//   join string (what the operator pastes on the vnode):    nsm1.<id>.<secret>.<ca-pin-hex>
//
// id: 6 characters [a-z0-9], public, the database key. secret: 16 characters [a-z0-9]
// (~82 bits; 16-64 accepted), only its SHA-256 is stored. ca-pin-hex: the 64 hex digits of the
// CA pin (pin.ts), so the vnode can authenticate the controller before it trusts anything.
// "nsm1" versions the format. Error messages never repeat the text: it holds a secret.
import { createHash, randomInt, timingSafeEqual } from "node:crypto";
import { invalid } from "../errors.ts";
import { parseCaPin, PIN_PREFIX } from "./pin.ts";

export const JOIN_TOKEN_VERSION = "nsm1";
const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const ID_LENGTH = 6;
const SECRET_LENGTH = 16;
const ID_PATTERN = /^[a-z0-9]{6}$/;
const SECRET_PATTERN = /^[a-z0-9]{16,64}$/;
const MAX_TEXT = 256;

export interface TokenCredential {
  id: string;
  secret: string;
}

export interface JoinToken extends TokenCredential {
  /** `<id>.<secret>` */
  token: string;
}

export interface JoinString extends TokenCredential {
  /** "sha256:<hex>", as caPin() returns it. */
  caPin: string;
}

// randomInt draws without modulo bias (it rejects out-of-range samples internally).
function randomString(length: number): string {
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[randomInt(ALPHABET.length)];
  return out;
}

export function createJoinToken(): JoinToken {
  const id = randomString(ID_LENGTH);
  const secret = randomString(SECRET_LENGTH);
  return { id, secret, token: `${id}.${secret}` };
}

function checkParts(id: string | undefined, secret: string | undefined, field: string): TokenCredential {
  if (id === undefined || !ID_PATTERN.test(id)) throw invalid(field, `token id must be ${ID_LENGTH} characters a-z0-9`);
  if (secret === undefined || !SECRET_PATTERN.test(secret)) {
    throw invalid(field, "token secret must be 16 to 64 characters a-z0-9");
  }
  return { id, secret };
}

function splitText(text: unknown, field: string): string[] {
  if (typeof text !== "string") throw invalid(field, "must be text");
  const trimmed = text.trim();
  if (trimmed === "" || trimmed.length > MAX_TEXT) throw invalid(field, "is empty or too long");
  return trimmed.split(".");
}

/** Builds the join string for the operator; refuses a malformed id, secret or pin. */
export function formatJoinToken(parts: JoinString): string {
  const { id, secret } = checkParts(parts.id, parts.secret, "token");
  const pin = parseCaPin(parts.caPin);
  return `${JOIN_TOKEN_VERSION}.${id}.${secret}.${pin.slice(PIN_PREFIX.length)}`;
}

/** Parses `nsm1.<id>.<secret>.<ca-pin-hex>`; every refusal is invalid("token", …). */
export function parseJoinToken(text: string): JoinString {
  const parts = splitText(text, "token");
  if (parts[0] !== JOIN_TOKEN_VERSION)
    throw invalid("token", `must start with '${JOIN_TOKEN_VERSION}.' (a join string from the controller)`);
  if (parts.length !== 4)
    throw invalid("token", `must have four parts: ${JOIN_TOKEN_VERSION}.<id>.<secret>.<ca-pin-hex>`);
  const credential = checkParts(parts[1], parts[2], "token");
  const pinHex = parts[3] ?? "";
  if (!/^[0-9a-fA-F]{64}$/.test(pinHex)) throw invalid("token", "CA pin must be 64 hex digits");
  return { ...credential, caPin: PIN_PREFIX + pinHex.toLowerCase() };
}

/** Parses the short `<id>.<secret>` form (what an enrolling agent presents). */
export function parseTokenCredential(text: string): TokenCredential {
  const parts = splitText(text, "token");
  if (parts.length !== 2) throw invalid("token", "must be <id>.<secret>");
  return checkParts(parts[0], parts[1], "token");
}

/** SHA-256 hex of the secret: the only form of it the controller keeps. A fast hash suffices:
 *  the secret is random, one-time and short-lived, not a password. */
export function hashTokenSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** Constant-time check of a presented secret against a stored hash. */
export function verifyTokenSecret(secret: string, hash: string): boolean {
  if (typeof secret !== "string" || typeof hash !== "string" || !/^[0-9a-f]{64}$/i.test(hash)) return false;
  return timingSafeEqual(Buffer.from(hashTokenSecret(secret), "hex"), Buffer.from(hash, "hex"));
}
