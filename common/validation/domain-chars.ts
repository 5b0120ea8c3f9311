// Which characters may be typed in a domain name. ASCII: letters, digits, '.' and '-' only, so
// '_', '/', '\', '%', '$', quotes, spaces, '@' and shell metacharacters never reach a path, a
// lookup or a command line. Non-ASCII: letters, combining marks and digits only; UTS #46 would
// otherwise silently map or drop some characters (fullwidth 'ｅ' → 'e', zero-width space → "",
// Kelvin sign → 'k', '。' → '.'), so the name the operator typed would not be the name we store.
import { invalid } from "../errors.ts";
import { codePointLabel, describeChar, isInvisible, show } from "./text.ts";

const ASCII_ALLOWED = /^[A-Za-z0-9.-]$/;

/** Why a non-ASCII character is refused, or undefined when it may appear in a U-label. */
function unicodeProblem(ch: string): string | undefined {
  if (isInvisible(ch)) return `${describeChar(ch)}; invisible and control characters are not allowed`;
  const cp = ch.codePointAt(0) ?? 0;
  if (cp >= 0xff00 && cp <= 0xffef)
    return `fullwidth or halfwidth form '${ch}' (${codePointLabel(ch)}); type the ordinary character`;
  if (!/^[\p{L}\p{M}\p{Nd}]$/u.test(ch)) return `${describeChar(ch)}, which is not a letter or digit`;
  if (/\p{ASCII}/u.test(ch.toLowerCase()))
    return `${describeChar(ch)}, which stands in for an ASCII letter; type the ASCII letter`;
  return undefined;
}

function labelAround(text: string, index: number): string {
  const start = text.lastIndexOf(".", index - 1) + 1;
  const end = text.indexOf(".", index);
  return text.slice(start, end < 0 ? text.length : end);
}

/** Refuse the first character that may not appear in a domain name, naming its label. */
export function checkDomainChars(text: string, field: string): void {
  let index = 0;
  for (const ch of text) {
    const problem =
      ch.charCodeAt(0) < 0x80
        ? ASCII_ALLOWED.test(ch)
          ? undefined
          : `${describeChar(ch)}; use letters, digits and hyphens`
        : unicodeProblem(ch);
    if (problem !== undefined)
      throw invalid(field, `domain label ${show(labelAround(text, index))} contains ${problem}`);
    index += ch.length;
  }
}
