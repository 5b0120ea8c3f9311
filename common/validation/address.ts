// Mail addresses: local part (local-part.ts) '@' domain (domain.ts), no display names, angle
// brackets, comments, quoted strings or domain literals. Parsed once where the address enters
// (CLI, admin socket, import, the agent's RPC boundary) and carried as a ParsedAddress from there:
// `address` is the form people read (local@U-label domain), `ascii` the stored form and the
// lookup key Postfix and Dovecot see (lower-case local part, '@', A-label domain).
import { invalid } from "../errors.ts";
import type { ParsedDomain } from "./domain.ts";
import { parseDomain } from "./domain.ts";
import { parseLocalPart } from "./local-part.ts";
import { requireText } from "./text.ts";

/** RFC 5321 path limit (256) minus the angle brackets. */
export const MAX_ADDRESS_LENGTH = 254;

declare const parsedBrand: unique symbol;

/**
 * An address that went through parseAddress, the only way to make one: code that takes a
 * ParsedAddress cannot be handed a raw string, so it never parses again.
 */
export interface ParsedAddress {
  readonly [parsedBrand]: true;
  /** local@unicode-domain: the form people read. */
  readonly address: string;
  /** local@ascii-domain: the form stored, sent to the agent and looked up. */
  readonly ascii: string;
  readonly local: string;
  readonly domain: ParsedDomain;
}

/** How many addresses have been parsed in this process (tests prove "parsed once" with it). */
export const addressParses = { count: 0 };

export function parseAddress(input: string, field = "address"): ParsedAddress {
  addressParses.count += 1;
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
  const ascii = `${local}@${domain.ascii}`;
  if (ascii.length > MAX_ADDRESS_LENGTH) {
    throw invalid(field, `address is ${ascii.length} characters; the limit is ${MAX_ADDRESS_LENGTH}`);
  }
  return { address: `${local}@${domain.unicode}`, ascii, local, domain } as ParsedAddress;
}
