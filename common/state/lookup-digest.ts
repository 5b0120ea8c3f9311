// The digest of a vnode's lookup rows (domains, mailboxes, aliases): XOR of one SHA-256 per row,
// over exactly what the controller sends (not the derived uid/gid/home, which are vnode-local; an
// adopted mailbox's own home/uid/gid are sent, so they count). The agent
// keeps it up to date row by row; the controller computes it from the state it compiled, so a
// push that was lost is noticed even when both sides name the same generation.
import { createHash } from "node:crypto";
import type { DesiredState } from "../gen/netserva/mail/v1/state_pb.ts";

export const EMPTY_DIGEST = "0".repeat(64);

export interface DomainDigestRow {
  readonly domain: string;
  readonly active: number;
}

export interface MailboxDigestRow {
  readonly user: string;
  readonly pass: string;
  readonly active: number;
  readonly quota: number;
  readonly sieve: string;
  readonly name: string;
  /** An adopted mailbox's own home, uid and gid; absent for derived ones (the digest is unchanged). */
  readonly owner?: MailboxOwner | undefined;
}

export interface MailboxOwner {
  readonly home: string;
  readonly uid: number;
  readonly gid: number;
}

export interface AliasDigestRow {
  readonly source: string;
  /** Targets joined with "," as valias.target stores them. */
  readonly target: string;
  readonly active: number;
}

export function hashDomain(r: DomainDigestRow): string {
  return rowHash(["d", r.domain, r.active]);
}

export function hashMailbox(r: MailboxDigestRow): string {
  const base = ["m", r.user, r.pass, r.active, r.quota, r.sieve, r.name];
  return rowHash(r.owner ? [...base, r.owner.home, r.owner.uid, r.owner.gid] : base);
}

export function hashAlias(r: AliasDigestRow): string {
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

/** The digest an agent reports once it has applied `state` (its rows are canonical already). */
export function lookupDigestOf(state: Pick<DesiredState, "domains" | "mailboxes" | "aliases">): string {
  let d = EMPTY_DIGEST;
  for (const x of state.domains) d = xorHex(d, hashDomain({ domain: x.domain, active: x.active ? 1 : 0 }));
  for (const m of state.mailboxes)
    d = xorHex(
      d,
      hashMailbox({
        user: m.address,
        pass: m.passwordHash,
        active: m.active ? 1 : 0,
        quota: Number(m.quotaBytes),
        sieve: m.sieveScript,
        name: m.displayName,
        owner: m.home === "" ? undefined : { home: m.home, uid: m.uid, gid: m.gid },
      }),
    );
  for (const a of state.aliases)
    d = xorHex(d, hashAlias({ source: a.source, target: a.targets.join(","), active: a.active ? 1 : 0 }));
  return d;
}
