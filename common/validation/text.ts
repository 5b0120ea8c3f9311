// Helpers shared by the parsers: hostile input must never reach an error message raw (a CR/LF
// or an RTL override in a refusal would forge log lines or hide text), and every refusal says
// which field was wrong and what is allowed instead.
import { NetservaError, invalid } from "../errors.ts";

/** Raw inputs longer than this are refused before any real parsing work is done. */
export const MAX_RAW_INPUT = 1024;

const NAMED: Record<string, string> = {
  "\u0000": "NUL (U+0000)",
  "\r": "CR (U+000D)",
  "\n": "LF (U+000A)",
  "\t": "a tab (U+0009)",
  " ": "a space",
};

/** Control, format (zero-width, bidi), private-use, unassigned, surrogate and separator chars. */
const INVISIBLE = /^[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Z}]$/u;

export function codePointLabel(ch: string): string {
  return "U+" + (ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0");
}

export function isInvisible(ch: string): boolean {
  return ch !== " " && INVISIBLE.test(ch);
}

/** A character as a human reads it in an error message: "'_'", "CR (U+000D)", "'ü' (U+00FC)". */
export function describeChar(ch: string): string {
  const named = NAMED[ch];
  if (named !== undefined) return named;
  if (/^\p{Cc}$/u.test(ch)) return `control character ${codePointLabel(ch)}`;
  if (isInvisible(ch)) return `invisible character ${codePointLabel(ch)}`;
  const cp = ch.codePointAt(0) ?? 0;
  return cp < 0x80 ? `'${ch}'` : `'${ch}' (${codePointLabel(ch)})`;
}

/** Quote an input for a message: invisible characters escaped as \u{…}, long values cut. */
export function show(value: string, max = 48): string {
  const chars = Array.from(value);
  const shown = chars
    .slice(0, max)
    .map((ch) => (isInvisible(ch) ? `\\u{${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase()}}` : ch))
    .join("");
  return `'${shown}${chars.length > max ? "…" : ""}'`;
}

/** Inputs arrive from JSON and argv too: refuse anything that is not a string. */
export function requireString(input: unknown, field: string): string {
  if (typeof input !== "string")
    throw invalid(field, `must be a string, got ${input === null ? "null" : typeof input}`);
  return input;
}

/** Refuse empty and oversized input and surrounding whitespace, never trimming silently. */
export function requireText(input: unknown, field: string, what: string, example: string): string {
  const text = requireString(input, field);
  if (text === "") throw invalid(field, `${what} is empty; give ${example}`);
  if (text.length > MAX_RAW_INPUT)
    throw invalid(field, `${what} is ${text.length} characters long; far over the limit`);
  const first = Array.from(text.slice(0, 2))[0] ?? "";
  const last = Array.from(text.slice(-2)).at(-1) ?? "";
  if (/^[\s\p{Cf}]$/u.test(first))
    throw invalid(field, `${what} starts with ${describeChar(first)}; remove surrounding whitespace`);
  if (/^[\s\p{Cf}]$/u.test(last))
    throw invalid(field, `${what} ends with ${describeChar(last)}; remove surrounding whitespace`);
  return text;
}

/**
 * Re-raise a refusal from an inner parser under `field`, prefixed with where it happened
 * ("target 2 'x@y': …"); anything that is not a refusal passes through untouched.
 */
export function rethrowWithin(err: unknown, field: string, context: string): never {
  if (err instanceof NetservaError && err.code === "invalid_argument") {
    const prefix = `${err.field ?? ""}: `;
    const detail = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
    throw invalid(field, `${context}: ${detail}`);
  }
  throw err;
}
