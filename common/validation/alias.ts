// Alias sources and targets, in the shape of NetServa's `valias(source, target)`: the source is
// an address on a hosted domain or a catch-all `@domain` (Postfix virtual_alias_maps syntax);
// the target is a comma-separated list of addresses, which may be on remote domains.
import { invalid } from "../errors.ts";
import type { ParsedAddress } from "./address.ts";
import { parseAddress } from "./address.ts";
import type { ParsedDomain } from "./domain.ts";
import { parseDomain } from "./domain.ts";
import { MAX_RAW_INPUT, requireString, requireText, rethrowWithin, show } from "./text.ts";

export const MAX_ALIAS_TARGETS = 50;

export type AliasSource =
  | { readonly kind: "address"; readonly local: string; readonly domain: ParsedDomain; readonly source: string }
  | { readonly kind: "catchall"; readonly domain: ParsedDomain; readonly source: string };

/** `user@example.com` or the catch-all `@example.com`; `source` is the lookup key. */
export function parseAliasSource(input: string, field = "source"): AliasSource {
  const text = requireText(
    input,
    field,
    "alias source",
    "an address such as info@example.com, or @example.com for a catch-all",
  );
  if (text === "@")
    throw invalid(field, "alias source is just '@'; give info@example.com, or @example.com for a catch-all");
  if (/^\*+@/.test(text))
    throw invalid(field, `alias source ${show(text)} uses '*'; a catch-all is written '@example.com'`);
  if (text.startsWith("@")) {
    const domain = parseDomain(text.slice(1), field);
    return { kind: "catchall", domain, source: `@${domain.ascii}` };
  }
  const { local, domain, ascii } = parseAddress(text, field);
  return { kind: "address", local, domain, source: ascii };
}

/**
 * Targets as one comma-separated string or a list (each item may itself hold commas). Spaces
 * and tabs around commas are dropped; empty entries, duplicates and more than 50 targets are
 * refused. Returns the addresses in the order given.
 */
export function parseAliasTargets(input: string | readonly string[], field = "targets"): ParsedAddress[] {
  const items: readonly unknown[] =
    typeof input === "string" ? [input] : Array.isArray(input) ? input : [requireString(input, field)];
  if (items.length === 0) throw invalid(field, "alias has no targets; give at least one address");
  const entries: string[] = [];
  for (const item of items) entries.push(...requireString(item, field).split(","));
  if (entries.join(",").length > MAX_ALIAS_TARGETS * MAX_RAW_INPUT)
    throw invalid(field, "alias targets are far too long");
  if (entries.length > MAX_ALIAS_TARGETS) {
    throw invalid(
      field,
      `alias has ${entries.length} targets; the limit is ${MAX_ALIAS_TARGETS} (use a mailing list for more)`,
    );
  }
  const seen = new Set<string>();
  return entries.map((entry, i) => {
    const trimmed = entry.replace(/^[ \t]+|[ \t]+$/g, "");
    if (trimmed === "") throw invalid(field, `target ${i + 1} is empty; remove the stray comma`);
    let parsed: ParsedAddress;
    try {
      parsed = parseAddress(trimmed, field);
    } catch (err) {
      rethrowWithin(err, field, `target ${i + 1} ${show(trimmed)}`);
    }
    if (seen.has(parsed.ascii)) throw invalid(field, `target ${show(parsed.ascii)} is listed twice`);
    seen.add(parsed.ascii);
    return parsed;
  });
}
