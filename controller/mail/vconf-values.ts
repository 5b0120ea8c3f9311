// Which vconf names hold secrets, and what a plain value may contain.
import { invalid } from "../../common/errors.ts";

/** MPWD, DPASS, and any name ending in PASS, PWD, PASSWORD or SECRET. */
export function isSecretName(name: string): boolean {
  return /(PASS|PWD|PASSWORD|SECRET)$/.test(name);
}

export const MAX_VCONF_VALUE = 1024;

/** A plain value: 1..1024 characters of valid Unicode with no control characters. */
export function checkVconfValue(input: unknown, field: string): string {
  if (typeof input !== "string")
    throw invalid(field, `must be a string, got ${input === null ? "null" : typeof input}`);
  if (input === "") throw invalid(field, "value is empty; remove the variable instead (delvconf)");
  if (input.length > MAX_VCONF_VALUE)
    throw invalid(field, `value is ${input.length} characters; the limit is ${MAX_VCONF_VALUE}`);
  if (!input.isWellFormed()) throw invalid(field, "value is not valid Unicode text (lone surrogate)");
  const control = /\p{Cc}/u.exec(input);
  if (control)
    throw invalid(
      field,
      `value contains control character U+${(control[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0")}`,
    );
  return input;
}
