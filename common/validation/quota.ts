// Mailbox quotas in bytes. A size is a whole or decimal number (at most 3 decimals) with an
// optional unit K, M, G or T, optionally followed by B or iB, case-insensitive. Units are binary
// multiples as Dovecot reads them (1K = 1024, 1G = 1024^3) whether written "G", "GB" or "GiB".
// A decimal size is rounded down to whole bytes. 0 means unlimited (as Dovecot's quota rule).
// The largest quota is 1 PiB (2^50 bytes), far below 2^53, so a plain number holds it exactly.
// Refused: signs, exponents (1e9), hex, spaces, a unit without a number, anything else.
import { invalid } from "../errors.ts";
import { requireText, show } from "./text.ts";

export const QUOTA_UNLIMITED = 0;
export const MAX_QUOTA_BYTES = 2 ** 50;

const UNITS: Readonly<Record<string, bigint>> = { "": 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n };
const SIZE = /^([0-9]+)(?:\.([0-9]+))?(?:([kmgt])(?:i?b)?|b)?$/i;
const HINT =
  "use a number with an optional unit K, M, G or T (binary: 1G = 1024M), e.g. 2G, 500M, 1.5G, or 0 for unlimited";

function fromNumber(input: number, field: string): number {
  if (!Number.isSafeInteger(input) || input < 0)
    throw invalid(field, `quota ${String(input)} is not a whole, non-negative number of bytes; ${HINT}`);
  if (input > MAX_QUOTA_BYTES) throw invalid(field, `quota ${input} bytes is over the limit of 1 PiB (2^50 bytes)`);
  return input;
}

/** Bytes from a size such as "2G", "500M", "1.5GiB", "1048576" or 0 (unlimited). */
export function parseQuota(input: string | number, field = "quota"): number {
  if (typeof input === "number") return fromNumber(input, field);
  const text = requireText(input, field, "quota", "a size such as 2G or 500M, or 0 for unlimited");
  if (text.length > 32) throw invalid(field, `quota ${show(text)} is too long; ${HINT}`);
  if (/^[-+]/.test(text)) throw invalid(field, `quota ${show(text)} has a sign; quotas are not negative; ${HINT}`);
  const m = SIZE.exec(text);
  if (!m) throw invalid(field, `quota ${show(text)} is not a size; ${HINT}`);
  const [, whole = "0", fraction = "", unit = ""] = m;
  if (fraction !== "" && unit === "")
    throw invalid(field, `quota ${show(text)} has a fraction of a byte; add a unit (K, M, G or T)`);
  if (fraction.length > 3) throw invalid(field, `quota ${show(text)} has more than 3 decimals`);
  // Exact integer arithmetic: 1.5G is 1_610_612_736 bytes, not a float approximation.
  const scale = 10n ** BigInt(fraction.length);
  const bytes = ((BigInt(whole) * scale + BigInt(fraction || "0")) * (UNITS[unit.toLowerCase()] ?? 1n)) / scale;
  if (bytes > BigInt(MAX_QUOTA_BYTES))
    throw invalid(field, `quota ${show(text)} is over the limit of 1 PiB (1024T, 2^50 bytes)`);
  return Number(bytes);
}

/** The shortest exact size string, which parses back to `bytes`: 2G, 512M, 1.5G, 1000000. */
export function formatQuota(bytes: number): string {
  fromNumber(bytes, "quota");
  if (bytes === 0) return "0";
  for (const unit of ["T", "G", "M", "K"]) {
    const size = UNITS[unit.toLowerCase()] ?? 1n;
    if (BigInt(bytes) < size) continue;
    // Only exact forms: 1000000 stays "1000000" rather than becoming a rounded "976.563K".
    for (let decimals = 0; decimals <= 3; decimals++) {
      if ((BigInt(bytes) * 10n ** BigInt(decimals)) % size !== 0n) continue;
      return `${(bytes / Number(size)).toFixed(decimals)}${unit}`;
    }
  }
  return String(bytes);
}
