// Small parsers for the numeric domain settings the common validation library has no word for.
import { invalid } from "../../common/errors.ts";

/** Largest max-mailboxes / max-aliases accepted: far beyond a vnode's design load of 100,000. */
export const MAX_LIMIT = 10_000_000;

/** A count limit: a whole number 0..10,000,000 (0 = unlimited), as a number or decimal text. */
export function parseLimit(input: number | string | undefined, field: string): number | undefined {
  if (input === undefined) return undefined;
  const n = typeof input === "number" ? input : /^[0-9]{1,9}$/.test(input) ? Number(input) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_LIMIT) {
    throw invalid(
      field,
      `${JSON.stringify(String(input)).slice(0, 40)} is not a whole number from 0 (unlimited) to ${MAX_LIMIT}`,
    );
  }
  return n;
}

/** A yes/no option that must really be a boolean (JSON imports can carry anything). */
export function parseBool(input: unknown, field: string): boolean | undefined {
  if (input === undefined) return undefined;
  if (typeof input !== "boolean")
    throw invalid(field, `must be true or false, got ${input === null ? "null" : typeof input}`);
  return input;
}
