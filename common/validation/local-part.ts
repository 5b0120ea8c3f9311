// Local parts (the part before '@'). RFC 5321 dot-atom only — no quoted strings — restricted to
// the characters that are inert everywhere a local part goes: Maildir paths
// (/srv/<domain>/msg/<user>/Maildir), Postfix and Dovecot lookups, argv, SQL and logs.
//
// Allowed: a-z 0-9 and . _ + = -   (upper case is accepted and lower-cased)
// - '+' is the usual recipient delimiter (user+tag@…) and common in forwarding targets;
// - '=' appears in SRS/VERP addresses (SRS0=hash=tt=domain=user@…) that aliases may forward to.
// Refused, though RFC 5322 atext allows them:
// - '%' Dovecot variable expansion (%u, %{user}) and Postfix's percent hack (user%host@relay);
// - '/' '\' paths; '!' bang paths; '|' pipe-to-command in aliases(5); '#' comments in map files;
// - '$' '`' '&' ';' '*' '?' '{' '}' '~' '^' "'" '"' shell, glob and SQL quoting hazards.
// The first character must be a letter, digit or '_': a leading '-' would read as an option.
// Non-ASCII local parts (SMTPUTF8) are refused: Postfix maps and Maildir names would need them
// in one agreed normal form, and most of the mail world cannot deliver to them.
import { invalid } from "../errors.ts";
import { asciiLower } from "./label.ts";
import { describeChar, isInvisible, requireText, show } from "./text.ts";

export const MAX_LOCAL_PART_LENGTH = 64;
const ALLOWED = /^[A-Za-z0-9._+=-]$/;
const ALLOWED_TEXT = "letters, digits and . _ + = -";

export function parseLocalPart(input: string, field = "local_part"): string {
  const text = requireText(input, field, "local part", "the part before '@', such as 'info'");
  if (text.startsWith('"')) throw invalid(field, `quoted local parts are not supported; use ${ALLOWED_TEXT}`);
  for (const ch of text) {
    if (ALLOWED.test(ch)) continue;
    if (ch.charCodeAt(0) >= 0x80 && !isInvisible(ch)) {
      throw invalid(
        field,
        `local part ${show(text)} contains ${describeChar(ch)}; internationalised (SMTPUTF8) local parts are not supported, use ${ALLOWED_TEXT}`,
      );
    }
    throw invalid(field, `local part ${show(text)} contains ${describeChar(ch)}; use ${ALLOWED_TEXT}`);
  }
  if (text.length > MAX_LOCAL_PART_LENGTH) {
    throw invalid(field, `local part is ${text.length} characters; the limit is ${MAX_LOCAL_PART_LENGTH}`);
  }
  if (text.startsWith(".") || text.endsWith("."))
    throw invalid(field, `local part ${show(text)} starts or ends with a dot`);
  if (text.includes(".."))
    throw invalid(field, `local part ${show(text)} contains '..'; dots must separate other characters`);
  if (!/^[A-Za-z0-9_]/.test(text))
    throw invalid(field, `local part ${show(text)} must start with a letter, digit or '_'`);
  return asciiLower(text);
}
