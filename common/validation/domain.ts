// Domain names: the parser every domain goes through before it reaches a path
// (/srv/<domain>/…), a Postfix/Dovecot lookup, DNS or the database. Policy:
// - Taken as typed: surrounding whitespace and a trailing dot are refused, not fixed, so each
//   domain has exactly one spelling in the database, the lookup tables and the paths.
// - Letters are lower-cased, the name is NFC-normalised and converted to A-labels with
//   UTS #46 (node:url domainToASCII); `unicode` is the display form. A name given as A-labels
//   must be the canonical encoding of its U-labels, and is checked exactly like a typed U-label.
// - At least two labels; labels 1..63 octets, LDH with no leading/trailing hyphen; at most 253
//   octets in A-label form; the top-level label starts with a letter (IP literals are refused).
// - Characters: see domain-chars.ts; homographs: see script.ts.
import { domainToASCII, domainToUnicode } from "node:url";
import { invalid } from "../errors.ts";
import { checkDomainChars } from "./domain-chars.ts";
import { checkLdhLabel } from "./label.ts";
import { checkLabelScripts } from "./script.ts";
import { requireText, show } from "./text.ts";

export const MAX_DOMAIN_LENGTH = 253;

export interface ParsedDomain {
  /** Lower-case A-label form: what paths, lookups, DNS and the database use. */
  readonly ascii: string;
  /** Unicode (U-label) form, for people. */
  readonly unicode: string;
}

export function parseDomain(input: string, field = "domain"): ParsedDomain {
  const text = requireText(input, field, "domain", "a domain name such as example.com");
  checkDomainChars(text, field);
  if (text.endsWith("."))
    throw invalid(field, `domain ${show(text)} ends with a dot; write it without the trailing dot`);
  const typed = text.toLowerCase().normalize("NFC").split(".");
  if (typed.includes("")) throw invalid(field, `domain ${show(text)} has an empty label (a leading dot or '..')`);
  if (typed.length < 2)
    throw invalid(field, `domain ${show(text)} has a single label; give a full name such as example.com`);
  const tld = typed.at(-1) ?? "";
  if (/^[0-9]+$/.test(tld))
    throw invalid(field, `domain ${show(text)} ends in an all-numeric label; IP addresses are not domain names`);
  if (!/^\p{L}/u.test(tld)) throw invalid(field, `top-level label ${show(tld)} must start with a letter`);

  const ascii = domainToASCII(typed.join("."));
  if (ascii === "") throw invalid(field, `domain ${show(text)} is not a valid internationalised domain name (IDNA)`);
  const unicode = domainToUnicode(ascii);
  const asciiLabels = ascii.split(".");
  const unicodeLabels = unicode.split(".");
  if (asciiLabels.length !== typed.length || unicodeLabels.length !== typed.length) {
    throw invalid(field, `domain ${show(text)} changes shape under IDNA; type it in its plain form`);
  }
  typed.forEach((label, i) => {
    const a = asciiLabels[i] ?? "";
    const u = unicodeLabels[i] ?? "";
    if (label !== a && label !== u)
      throw invalid(field, `domain label ${show(label)} is not in normal form; IDNA turns it into ${show(u)}`);
    checkLdhLabel(a, field, "domain label");
    if (a.startsWith("xn--")) {
      if (domainToASCII(u) !== a) throw invalid(field, `domain label ${show(a)} is not a canonical IDNA A-label`);
      checkDomainChars(u, field);
      if (u.startsWith("-") || u.endsWith("-"))
        throw invalid(field, `domain label ${show(u)} starts or ends with a hyphen`);
    }
  });
  if (ascii.length > MAX_DOMAIN_LENGTH) {
    throw invalid(
      field,
      `domain is ${ascii.length} characters in ASCII (A-label) form; the limit is ${MAX_DOMAIN_LENGTH}`,
    );
  }
  checkLabelScripts(unicodeLabels, field);
  return { ascii, unicode };
}
