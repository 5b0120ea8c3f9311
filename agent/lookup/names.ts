// Re-validation of every name that arrives over the wire before it reaches a path, a SQL row or a
// config file (defence in depth: the controller validated it too). Built on common/validation,
// plus one agent rule: what arrives must already be canonical (lower-case A-label etc.), because
// silently normalising here would make the vnode's keys differ from the controller's.
import { invalid } from "../../common/errors.ts";
import { hashCostProblem } from "../../common/password/hash-cost.ts";
import {
  MAX_QUOTA_BYTES,
  checkSieveScript,
  parseAddress,
  parseAliasSource,
  parseAliasTargets,
  parseDisplayName,
  parseDomain,
} from "../../common/validation/index.ts";

// Crypt-style hashes Dovecot can verify; no whitespace, quotes or control characters.
const HASH = /^\{(SHA512-CRYPT|SHA256-CRYPT|BLF-CRYPT|ARGON2ID|ARGON2I)\}\$[A-Za-z0-9./$=,+-]{8,400}$/;

function canonical(field: string, given: string, parsed: string): string {
  if (given !== parsed)
    throw invalid(field, `${JSON.stringify(given)} is not in canonical form (expected ${JSON.stringify(parsed)})`);
  return parsed;
}

export function checkDomain(field: string, value: string): string {
  return canonical(field, value, parseDomain(value, field).ascii);
}

export interface Address {
  readonly address: string;
  readonly local: string;
  readonly domain: string;
}

export function checkAddress(field: string, value: string): Address {
  const a = parseAddress(value, field);
  return { address: canonical(field, value, a.address), local: a.local, domain: a.domain.ascii };
}

/** Alias source: a full address or "@domain" (catch-all). */
export function checkAliasSource(field: string, value: string): { source: string; domain: string } {
  const s = parseAliasSource(value, field);
  return { source: canonical(field, value, s.source), domain: s.domain.ascii };
}

/** Targets joined the way valias.target stores them. */
export function checkAliasTargets(field: string, value: readonly string[]): string {
  return parseAliasTargets(value, field)
    .map((t, i) => canonical(field, value[i] ?? "", t.address))
    .join(",");
}

export function checkPasswordHash(field: string, value: string): string {
  if (!HASH.test(value)) throw invalid(field, "must be a {SCHEME}$... crypt hash Dovecot can verify");
  // Again here, before the row is written: Dovecot's auth workers pay this cost on every login.
  const costly = hashCostProblem(value);
  if (costly !== undefined) throw invalid(field, costly);
  return value;
}

/** Quota in bytes; 0 = unlimited. */
export function checkQuota(field: string, value: bigint): number {
  if (value < 0n || value > BigInt(MAX_QUOTA_BYTES)) throw invalid(field, "quota out of range (0..2^50 bytes)");
  return Number(value);
}

/** "" means no script; anything else must pass the edge check (sievec compiles it on delivery). */
export function checkSieve(field: string, value: string): string {
  return value === "" ? "" : checkSieveScript(value, field);
}

export function checkDisplayName(field: string, value: string): string {
  return parseDisplayName(value, field);
}
