// Passwords operators bring themselves (via stdin); generated ones come from the CSPRNG elsewhere.
// Only what would break storage or protocols is refused: 8..1024 characters (code points), no
// control characters (NUL ends C strings, CR/LF end IMAP/POP3/SMTP AUTH lines, the rest cannot
// be typed reliably in a mail client), and valid Unicode so it has one UTF-8 encoding to hash.
// Messages never echo the password.
import { invalid } from "../errors.ts";
import { describeChar, requireString } from "./text.ts";

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 1024;

export function checkPasswordInput(pw: string, field = "password"): string {
  const text = requireString(pw, field);
  if (text.length > MAX_PASSWORD_LENGTH * 2)
    throw invalid(field, `password is longer than ${MAX_PASSWORD_LENGTH} characters`);
  if (!text.isWellFormed()) throw invalid(field, "password is not valid Unicode text (lone surrogate)");
  const length = Array.from(text).length;
  if (length < MIN_PASSWORD_LENGTH)
    throw invalid(field, `password has ${length} characters; use at least ${MIN_PASSWORD_LENGTH}`);
  if (length > MAX_PASSWORD_LENGTH)
    throw invalid(field, `password has ${length} characters; the limit is ${MAX_PASSWORD_LENGTH}`);
  const control = /[\p{Cc}]/u.exec(text);
  if (control) {
    const hint = control[0] === "\n" || control[0] === "\r" ? " (if it was piped in, strip the trailing newline)" : "";
    throw invalid(field, `password contains ${describeChar(control[0])}; control characters are not allowed${hint}`);
  }
  return text;
}
