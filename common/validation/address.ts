// Mail addresses: local part (local-part.ts) '@' domain (domain.ts), no display names, angle
// brackets, comments, quoted strings or domain literals. `address` is the lookup key Postfix and
// Dovecot see: lower-case local part, '@', A-label domain.
import { invalid } from "../errors.ts";
import type { ParsedDomain } from "./domain.ts";
import { parseDomain } from "./domain.ts";
import { parseLocalPart } from "./local-part.ts";
import { requireText } from "./text.ts";

/** RFC 5321 path limit (256) minus the angle brackets. */
export const MAX_ADDRESS_LENGTH = 254;

export interface ParsedAddress {
  readonly local: string;
  readonly domain: ParsedDomain;
  /** `local@ascii-domain`, the canonical form stored and looked up. */
  readonly address: string;
}

export function parseAddress(input: string, field = "address"): ParsedAddress {
  const text = requireText(input, field, "address", "an address such as user@example.com");
  const at = text.lastIndexOf("@");
  if (at < 0) throw invalid(field, "address has no '@'; give an address such as user@example.com");
  if (text.indexOf("@") !== at)
    throw invalid(field, "address contains more than one '@'; give one address such as user@example.com");
  if (at === 0) throw invalid(field, "address has nothing before '@'; give an address such as user@example.com");
  if (at === text.length - 1)
    throw invalid(field, "address has no domain after '@'; give an address such as user@example.com");
  const local = parseLocalPart(text.slice(0, at), field);
  const domain = parseDomain(text.slice(at + 1), field);
  const address = `${local}@${domain.ascii}`;
  if (address.length > MAX_ADDRESS_LENGTH) {
    throw invalid(field, `address is ${address.length} characters; the limit is ${MAX_ADDRESS_LENGTH}`);
  }
  return { local, domain, address };
}
