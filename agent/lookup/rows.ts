// Desired-state messages → validated lookup rows, and the canonical per-row hash behind digest().
// The hash covers only what the controller sends (not uid/gid/home, which are vnode-local), so a
// controller can compute the same digest from its own state.
import { createHash } from "node:crypto";
import type { MailAlias, MailDomain, Mailbox } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import {
  checkAddress,
  checkAliasSource,
  checkAliasTargets,
  checkDisplayName,
  checkDomain,
  checkPasswordHash,
  checkQuota,
  checkSieve,
} from "./names.ts";

export interface DomainRow {
  readonly domain: string;
  readonly active: number;
}

export interface MailboxRow {
  readonly user: string;
  readonly domain: string;
  readonly local: string;
  readonly pass: string;
  readonly active: number;
  readonly quota: number;
  readonly sieve: string;
  readonly name: string;
}

export interface AliasRow {
  readonly source: string;
  readonly domain: string;
  readonly target: string;
  readonly active: number;
}

export function domainRow(d: MailDomain): DomainRow {
  return { domain: checkDomain("domain.domain", d.domain), active: d.active ? 1 : 0 };
}

export function mailboxRow(m: Mailbox): MailboxRow {
  const a = checkAddress("mailbox.address", m.address);
  return {
    user: a.address,
    domain: a.domain,
    local: a.local,
    pass: checkPasswordHash("mailbox.password_hash", m.passwordHash),
    active: m.active ? 1 : 0,
    quota: checkQuota("mailbox.quota_bytes", m.quotaBytes),
    sieve: checkSieve("mailbox.sieve_script", m.sieveScript),
    name: checkDisplayName("mailbox.display_name", m.displayName),
  };
}

export function aliasRow(a: MailAlias): AliasRow {
  const { source, domain } = checkAliasSource("alias.source", a.source);
  return { source, domain, target: checkAliasTargets("alias.targets", a.targets), active: a.active ? 1 : 0 };
}

export function hashDomain(r: DomainRow): string {
  return rowHash(["d", r.domain, r.active]);
}

export function hashMailbox(r: Pick<MailboxRow, "user" | "pass" | "active" | "quota" | "sieve" | "name">): string {
  return rowHash(["m", r.user, r.pass, r.active, r.quota, r.sieve, r.name]);
}

export function hashAlias(r: Pick<AliasRow, "source" | "target" | "active">): string {
  return rowHash(["a", r.source, r.target, r.active]);
}

function rowHash(fields: ReadonlyArray<string | number>): string {
  return createHash("sha256").update(JSON.stringify(fields)).digest("hex");
}

/** XOR of row hashes: order-independent and updatable in O(1) per changed row (keys are unique). */
export function xorHex(a: string, b: string): string {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  for (let i = 0; i < x.length; i++) x[i] = (x[i] ?? 0) ^ (y[i] ?? 0);
  return x.toString("hex");
}

export const EMPTY_DIGEST = "0".repeat(64);
