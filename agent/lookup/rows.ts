// Desired-state messages → validated lookup rows. The per-row hash behind digest() lives in
// common/state/lookup-digest.ts: the controller computes the same digest from its own state.
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

export { EMPTY_DIGEST, hashAlias, hashDomain, hashMailbox, xorHex } from "../../common/state/lookup-digest.ts";
