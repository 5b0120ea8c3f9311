// One DNS label in its ASCII (LDH) form: the shape shared by domain labels, host names, vnode
// names (certificate SANs and file paths) and DKIM selectors (`<selector>._domainkey.<domain>`).
import { invalid } from "../errors.ts";
import { describeChar, show } from "./text.ts";

export const MAX_LABEL_LENGTH = 63;

/**
 * Refuse a label that is not letters, digits and hyphens, longer than 63 octets, starts or ends
 * with a hyphen, or has "--" in positions 3-4 (reserved for IDNA "xn--" A-labels, RFC 5891).
 * `subject` starts the message: "domain label", "vnode name", …
 */
export function checkLdhLabel(label: string, field: string, subject: string): void {
  if (label === "") throw invalid(field, `${subject} is empty; use letters, digits and hyphens`);
  const bad = /[^a-z0-9-]/u.exec(label);
  if (bad)
    throw invalid(field, `${subject} ${show(label)} contains ${describeChar(bad[0])}; use letters, digits and hyphens`);
  if (label.length > MAX_LABEL_LENGTH) {
    throw invalid(field, `${subject} ${show(label)} is ${label.length} characters; the limit is ${MAX_LABEL_LENGTH}`);
  }
  if (label.startsWith("-") || label.endsWith("-")) {
    throw invalid(field, `${subject} ${show(label)} starts or ends with a hyphen; hyphens may only go inside`);
  }
  if (label.slice(2, 4) === "--" && !label.startsWith("xn--")) {
    throw invalid(
      field,
      `${subject} ${show(label)} has '--' in positions 3-4, which is reserved for IDNA 'xn--' labels`,
    );
  }
}

/** Lower-case ASCII letters only: non-ASCII case mapping is IDNA's job, not ours. */
export function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}
