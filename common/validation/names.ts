// Short names that travel into certificate SANs, file paths, DNS records, headers and logs.
// Each parser refuses rather than repairs, apart from normalising letter case where the name is
// case-insensitive by nature (vnode names, DKIM selectors, VConf keys).
import { invalid } from "../errors.ts";
import { asciiLower, checkLdhLabel } from "./label.ts";
import { describeChar, requireString, requireText, show } from "./text.ts";

export { parseHostPort } from "./host-port.ts";
export type { HostPort } from "./host-port.ts";

/** A vnode name: one DNS label (it is a certificate SAN and a directory name), lower-cased. */
export function parseVnodeName(input: string, field = "vnode"): string {
  const text = requireText(input, field, "vnode name", "a name such as mail1");
  const name = asciiLower(text);
  checkLdhLabel(name, field, "vnode name");
  return name;
}

/** A DKIM selector: one DNS label (`<selector>._domainkey.<domain>`, a key file name), lower-cased. */
export function parseDkimSelector(input: string, field = "selector"): string {
  const text = requireText(input, field, "DKIM selector", "a selector such as mail or s2024");
  const name = asciiLower(text);
  checkLdhLabel(name, field, "DKIM selector");
  return name;
}

/**
 * A VConf variable name as NetServa writes them (MPWD, MQUOTA, DPASS, …): an upper-case letter,
 * then 1..15 upper-case letters, digits or '_' (2..16 in all). Lower case is upper-cased.
 */
export function parseVconfName(input: string, field = "name"): string {
  const text = requireText(input, field, "variable name", "a name such as MPWD");
  const name = text.replace(/[a-z]+/g, (s) => s.toUpperCase());
  if (!/^[A-Z][A-Z0-9_]{1,15}$/.test(name)) {
    throw invalid(
      field,
      `variable name ${show(text)} must be 2 to 16 of A-Z, 0-9 and '_', starting with a letter (e.g. MPWD, MQUOTA)`,
    );
  }
  return name;
}

/** A request id (idempotency key, log correlation): 1..64 of A-Z a-z 0-9 . _ : - */
export function parseRequestId(input: string, field = "request_id"): string {
  const text = requireText(input, field, "request id", "1 to 64 letters, digits and . _ : -");
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(text)) {
    throw invalid(field, `request id ${show(text)} must be 1 to 64 of letters, digits and . _ : -`);
  }
  return text;
}

/** Code points that could break or disguise a header: controls, bidi overrides and isolates. */
const DISPLAY_NAME_BAD = /[\p{Cc}\u2028\u2029\u202A-\u202E\u2066-\u2069"<>\\]/u;
export const MAX_DISPLAY_NAME_LENGTH = 128;

/**
 * A person's display name ("Jane Doe"): up to 128 characters, no control characters, bidi
 * overrides, '"', '<', '>' or '\', so it can be placed in a From: header without quoting games.
 * The empty string means "no name".
 */
export function parseDisplayName(input: string, field = "display_name"): string {
  const text = requireString(input, field);
  if (text === "") return "";
  requireText(text, field, "display name", "a name such as Jane Doe");
  if (!text.isWellFormed()) throw invalid(field, "display name is not valid Unicode text (lone surrogate)");
  const bad = DISPLAY_NAME_BAD.exec(text);
  if (bad)
    throw invalid(
      field,
      `display name contains ${describeChar(bad[0])}; control characters, bidi overrides, quotes, '<', '>' and '\\' are not allowed`,
    );
  const length = Array.from(text).length;
  if (length > MAX_DISPLAY_NAME_LENGTH)
    throw invalid(field, `display name is ${length} characters; the limit is ${MAX_DISPLAY_NAME_LENGTH}`);
  return text;
}

/** The `active` column: "1"/"true" or "0"/"false" (or a boolean), nothing else. */
export function parseActiveFlag(input: string | boolean, field = "active"): boolean {
  if (typeof input === "boolean") return input;
  const text = requireString(input, field);
  if (text === "1" || text === "true") return true;
  if (text === "0" || text === "false") return false;
  throw invalid(field, `${show(text)} is not a flag; use 1 or true, 0 or false`);
}
