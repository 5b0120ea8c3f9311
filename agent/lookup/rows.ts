// Desired-state messages → validated lookup rows: the agent's boundary. Every name in a state or
// a change is checked (and each address parsed) once, here; the store and the mail host take the
// checked rows and never parse again. The per-row hash behind digest() lives in
// common/state/lookup-digest.ts: the controller computes the same digest from its own state.
import type {
  DesiredState,
  MailAlias,
  MailDomain,
  Mailbox,
  StateChange,
} from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { ParsedAddress } from "../../common/validation/index.ts";
import {
  checkAddress,
  checkAliasSource,
  checkAliasTargets,
  checkDisplayName,
  checkDomain,
  checkPasswordHash,
  checkMailboxOwner,
  checkQuota,
  checkSieve,
} from "./names.ts";
import type { MailboxOwner } from "../../common/state/lookup-digest.ts";
import { endsSlice, runAtOnce, runInTurns, type Steps } from "./turns.ts";

export interface DomainRow {
  readonly domain: string;
  readonly active: number;
}

/** A `vmails` row; `user` is NetServa's column name for the mailbox's ascii form. */
export interface MailboxRow {
  readonly user: string;
  readonly domain: string;
  readonly local: string;
  readonly pass: string;
  readonly active: number;
  readonly quota: number;
  readonly sieve: string;
  readonly name: string;
  /** An adopted mailbox's own home, uid and gid (used as they are); absent = derived. */
  readonly owner?: MailboxOwner;
}

export interface AliasRow {
  readonly source: string;
  readonly domain: string;
  readonly target: string;
  readonly active: number;
}

/** A whole desired state's lookup rows, checked. */
export interface CheckedRows {
  readonly domains: readonly DomainRow[];
  readonly mailboxes: readonly MailboxRow[];
  readonly aliases: readonly AliasRow[];
}

/** One incremental change, checked; `keepMaildir` as sent (only deletes act on it). */
export type CheckedChange =
  | { readonly kind: "upsertDomain"; readonly row: DomainRow }
  | { readonly kind: "deleteDomain"; readonly domain: string; readonly keepMaildir: boolean }
  | { readonly kind: "upsertMailbox"; readonly row: MailboxRow }
  | { readonly kind: "deleteMailbox"; readonly address: ParsedAddress; readonly keepMaildir: boolean }
  | { readonly kind: "upsertAlias"; readonly row: AliasRow }
  | { readonly kind: "deleteAlias"; readonly source: string }
  | { readonly kind: "none" };

export function domainRow(d: MailDomain): DomainRow {
  return { domain: checkDomain(d.domain, "domain.domain"), active: d.active ? 1 : 0 };
}

export function mailboxRow(m: Mailbox): MailboxRow {
  const a = checkAddress(m.address, "mailbox.address");
  return {
    user: a.ascii,
    domain: a.domain.ascii,
    local: a.local,
    pass: checkPasswordHash(m.passwordHash, "mailbox.password_hash"),
    active: m.active ? 1 : 0,
    quota: checkQuota(m.quotaBytes, "mailbox.quota_bytes"),
    sieve: checkSieve(m.sieveScript, "mailbox.sieve_script"),
    name: checkDisplayName(m.displayName, "mailbox.display_name"),
    ...checkMailboxOwner(m, "mailbox"),
  };
}

export function aliasRow(a: MailAlias): AliasRow {
  const { source, domain } = checkAliasSource(a.source, "alias.source");
  return {
    source,
    domain: domain.ascii,
    target: checkAliasTargets(a.targets, "alias.targets"),
    active: a.active ? 1 : 0,
  };
}

/** Every row of a whole state, checked before anything is written (a bad row refuses it all). */
export function checkState(state: DesiredState): CheckedRows {
  return runAtOnce(checkStateSteps(state));
}

/** checkState in turns of the event loop (a 100,000-row state: see turns.ts). */
export function checkStateInTurns(state: DesiredState): Promise<CheckedRows> {
  return runInTurns(checkStateSteps(state));
}

function* checkStateSteps(state: DesiredState): Steps<CheckedRows> {
  function* each<M, R>(messages: readonly M[], check: (m: M) => R): Generator<void, R[], void> {
    const out: R[] = [];
    for (let i = 0; i < messages.length; i++) {
      out.push(check(messages[i] as M));
      if (endsSlice(i)) yield;
    }
    return out;
  }
  const domains = yield* each(state.domains, domainRow);
  const mailboxes = yield* each(state.mailboxes, mailboxRow);
  const aliases = yield* each(state.aliases, aliasRow);
  return { domains, mailboxes, aliases };
}

export function checkChanges(changes: readonly StateChange[]): CheckedChange[] {
  return changes.map((c): CheckedChange => {
    const k = c.kind;
    switch (k.case) {
      case "upsertDomain":
        return { kind: "upsertDomain", row: domainRow(k.value) };
      case "deleteDomain":
        return { kind: "deleteDomain", domain: checkDomain(k.value, "delete_domain"), keepMaildir: c.keepMaildir };
      case "upsertMailbox":
        return { kind: "upsertMailbox", row: mailboxRow(k.value) };
      case "deleteMailbox":
        return { kind: "deleteMailbox", address: checkAddress(k.value, "delete_mailbox"), keepMaildir: c.keepMaildir };
      case "upsertAlias":
        return { kind: "upsertAlias", row: aliasRow(k.value) };
      case "deleteAlias":
        return { kind: "deleteAlias", source: checkAliasSource(k.value, "delete_alias").source };
      default:
        return { kind: "none" }; // an empty change (unknown future kind) changes nothing
    }
  });
}

export { EMPTY_DIGEST, hashAlias, hashDomain, hashMailbox, xorHex } from "../../common/state/lookup-digest.ts";
