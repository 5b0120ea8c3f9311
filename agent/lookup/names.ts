// Re-validation of every name that arrives over the wire before it reaches a path, a SQL row or a
// config file (defence in depth: the controller validated it too). Built on common/validation,
// plus one agent rule: what arrives must already be canonical (lower-case A-label etc.), because
// silently normalising here would make the vnode's keys differ from the controller's. Each check
// takes (value, field), as the parsers in common/validation do.
import { invalid } from "../../common/errors.ts";
import { hashCostProblem } from "../../common/password/hash-cost.ts";
import { isStoredHashForm } from "../../common/password/stored-hash-form.ts";
import {
  MAX_QUOTA_BYTES,
  checkSieveScript,
  parseAddress,
  parseAliasSource,
  parseAliasTargets,
  parseDisplayName,
  parseDomain,
} from "../../common/validation/index.ts";
import type { AliasSource, ParsedAddress } from "../../common/validation/index.ts";

// Adopted homes: absolute, and nothing a Dovecot or SQL value would need quoting for.
const HOME = /^\/[A-Za-z0-9._@+-]+(?:\/[A-Za-z0-9._@+-]+)*$/;
const MAX_ID = 2 ** 31 - 1;

function canonical(given: string, parsed: string, field: string): string {
  if (given !== parsed)
    throw invalid(field, `${JSON.stringify(given)} is not in canonical form (expected ${JSON.stringify(parsed)})`);
  return parsed;
}

export function checkDomain(value: string, field: string): string {
  return canonical(value, parseDomain(value, field).ascii, field);
}

/** An address as the controller sends it: its ascii form, parsed here once and carried typed. */
export function checkAddress(value: string, field: string): ParsedAddress {
  const a = parseAddress(value, field);
  canonical(value, a.ascii, field);
  return a;
}

/** Alias source: a full address or "@domain" (catch-all). */
export function checkAliasSource(value: string, field: string): AliasSource {
  const s = parseAliasSource(value, field);
  canonical(value, s.source, field);
  return s;
}

/** Targets joined the way valias.target stores them. */
export function checkAliasTargets(value: readonly string[], field: string): string {
  return parseAliasTargets(value, field)
    .map((t, i) => canonical(value[i] ?? "", t.ascii, field))
    .join(",");
}

export function checkPasswordHash(value: string, field: string): string {
  if (!isStoredHashForm(value)) throw invalid(field, "must be a {SCHEME}... hash Dovecot can verify");
  // Again here, before the row is written: Dovecot's auth workers pay this cost on every login.
  const costly = hashCostProblem(value);
  if (costly !== undefined) throw invalid(field, costly);
  return value;
}

/** Quota in bytes; 0 = unlimited. */
export function checkQuota(value: bigint, field: string): number {
  if (value < 0n || value > BigInt(MAX_QUOTA_BYTES)) throw invalid(field, "quota out of range (0..2^50 bytes)");
  return Number(value);
}

/** "" means no script; anything else must pass the edge check (sievec compiles it on delivery). */
export function checkSieve(value: string, field: string): string {
  return value === "" ? "" : checkSieveScript(value, field);
}

export function checkDisplayName(value: string, field: string): string {
  return parseDisplayName(value, field);
}

/**
 * An adopted mailbox's own home and owner: all three or none (0/"" = derived). The home is an
 * absolute, normalised path (no "..", "." or empty segments); uid and gid are never root's.
 */
export function checkMailboxOwner(
  m: { home: string; uid: number; gid: number },
  field: string,
): { owner?: { home: string; uid: number; gid: number } } {
  if (m.home === "" && m.uid === 0 && m.gid === 0) return {};
  if (m.home.length > 4096 || !HOME.test(m.home) || m.home.split("/").some((s) => s === "." || s === ".."))
    throw invalid(`${field}.home`, "must be an absolute, normalised path (letters, digits, . _ @ + -)");
  for (const [name, id] of [
    ["uid", m.uid],
    ["gid", m.gid],
  ] as const) {
    if (!Number.isInteger(id) || id < 1 || id > MAX_ID)
      throw invalid(`${field}.${name}`, "must be given with the home, 1..2147483647 (never root)");
  }
  return { owner: { home: m.home, uid: m.uid, gid: m.gid } };
}
