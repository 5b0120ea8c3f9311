// TXT records: one logical value is carried as one or more character-strings of at most 255
// bytes each (RFC 1035 §3.3.14; RFC 6376 §3.6.2.2 for DKIM keys), and written in zone-file form
// as quoted strings separated by spaces. Receivers join the strings without a separator.
import { invalid } from "../../common/errors.ts";

export const MAX_TXT_STRING = 255;

/** Splits an ASCII value into character-strings of at most `max` bytes. */
export function splitTxt(value: string, max = MAX_TXT_STRING): string[] {
  if (!/^[\x20-\x7e]*$/.test(value)) throw invalid("txt", "record values must be printable ASCII");
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += max) parts.push(value.slice(i, i + max));
  return parts.length === 0 ? [""] : parts;
}

/** ["v=DKIM1; k=rsa; p=MII…", "…"] → "\"v=DKIM1; k=rsa; p=MII…\" \"…\"" */
export function txtPresentation(value: string): string {
  return splitTxt(value)
    .map((s) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`)
    .join(" ");
}

/** Zone-file TXT content back to its joined value ("a" "b" → "ab"); unquoted text is taken as is. */
export function txtValue(presentation: string): string {
  const parts = [...presentation.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) =>
    (m[1] ?? "").replace(/\\(\d{3}|.)/g, (_, c: string) => (c.length === 3 ? String.fromCharCode(Number(c)) : c)),
  );
  return parts.length === 0 ? presentation : parts.join("");
}
