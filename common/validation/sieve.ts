// A first sanity check of a user's Sieve script before it is stored and shipped to a vnode. It
// is NOT a Sieve parser: the real validation is `sievec` on the vnode, which compiles the script
// before it goes live. Here we only refuse what is certainly not a script, cheaply, at the edge:
// more than 64 KiB of UTF-8, invalid UTF-8 (or lone surrogates), a byte-order mark, NUL bytes,
// an unterminated /* comment, and text whose first token after comments and whitespace is not an
// identifier (a command such as `require`, `if` or `keep`). A script of only comments is
// refused too: it does nothing, so delete it instead.
import { invalid } from "../errors.ts";
import { requireString, show } from "./text.ts";

export const MAX_SIEVE_BYTES = 64 * 1024;

function decode(input: string | Uint8Array, field: string): string {
  if (typeof input !== "string" && !(input instanceof Uint8Array)) return requireString(input, field);
  const size = typeof input === "string" ? Buffer.byteLength(input, "utf8") : input.byteLength;
  if (size > MAX_SIEVE_BYTES)
    throw invalid(field, `sieve script is ${size} bytes; the limit is ${MAX_SIEVE_BYTES} (64 KiB)`);
  if (typeof input === "string") {
    if (!input.isWellFormed()) throw invalid(field, "sieve script is not valid UTF-8 text (lone surrogate)");
    return input;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(input);
  } catch {
    throw invalid(field, "sieve script is not valid UTF-8 text");
  }
}

/** Index of the first token after whitespace and comments (text.length if there is none). */
function firstToken(text: string, field: string): number {
  let i = 0;
  while (i < text.length) {
    if (" \t\r\n".includes(text[i] ?? "")) i++;
    else if (text[i] === "#") i = text.includes("\n", i) ? text.indexOf("\n", i) + 1 : text.length;
    else if (text.startsWith("/*", i)) {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) throw invalid(field, "sieve script has a '/*' comment that is never closed with '*/'");
      i = end + 2;
    } else return i;
  }
  return i;
}

/** Returns the script text (decoded if bytes were given) or refuses it. */
export function checkSieveScript(text: string | Uint8Array, field = "sieve"): string {
  const script = decode(text, field);
  if (script.startsWith("\uFEFF"))
    throw invalid(field, "sieve script starts with a byte-order mark; save it as UTF-8 without BOM");
  const nul = script.indexOf("\u0000");
  if (nul >= 0)
    throw invalid(field, `sieve script contains NUL (U+0000) on line ${script.slice(0, nul).split("\n").length}`);
  const start = firstToken(script, field);
  if (start === script.length)
    throw invalid(field, "sieve script contains no commands; delete the script instead of storing an empty one");
  if (!/^[A-Za-z_]/.test(script.slice(start))) {
    throw invalid(
      field,
      `sieve script must begin with 'require' or a command (after comments), not ${show(script.slice(start, start + 20))}`,
    );
  }
  return script;
}
