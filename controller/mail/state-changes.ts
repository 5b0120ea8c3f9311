// Rows → protobuf: one `toProto` per row kind, used by the incremental changes an agent applies
// (netserva.mail.v1.StateChange) and by the compiler's whole state alike. Only canonical keys
// travel: A-label domains, local@ascii-domain addresses, targets as stored.
import { create } from "@bufbuild/protobuf";
import {
  MailAliasSchema,
  MailDomainSchema,
  MailboxSchema,
  StateChangeSchema,
} from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { MailAlias, MailDomain, Mailbox, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";

export interface DomainRowLike {
  domain: string;
  active: boolean;
}

export interface MailboxRowLike {
  /** local@ascii-domain (the agent only ever sees the stored form). */
  ascii: string;
  passwordHash: string;
  quota: number | bigint;
  active: boolean;
  sieveScript?: string | null | undefined;
  displayName: string;
  /** An adopted mailbox's own home and owner (all three, or none: derived on the vnode). */
  home?: string | null | undefined;
  uid?: number | null | undefined;
  gid?: number | null | undefined;
}

export interface AliasRowLike {
  source: string;
  targets: readonly string[];
  active: boolean;
}

export function domainToProto(d: DomainRowLike): MailDomain {
  return create(MailDomainSchema, { domain: d.domain, active: d.active });
}

export function mailboxToProto(m: MailboxRowLike): Mailbox {
  return create(MailboxSchema, {
    address: m.ascii,
    passwordHash: m.passwordHash,
    quotaBytes: BigInt(m.quota),
    active: m.active,
    sieveScript: m.sieveScript ?? "",
    displayName: m.displayName,
    ...(m.home ? { home: m.home, uid: m.uid ?? 0, gid: m.gid ?? 0 } : {}),
  });
}

export function aliasToProto(a: AliasRowLike): MailAlias {
  return create(MailAliasSchema, { source: a.source, targets: [...a.targets], active: a.active });
}

export function upsertDomain(d: DomainRowLike): StateChange {
  return create(StateChangeSchema, { kind: { case: "upsertDomain", value: domainToProto(d) } });
}

export function deleteDomain(domain: string, keepMaildir = false): StateChange {
  return create(StateChangeSchema, { kind: { case: "deleteDomain", value: domain }, keepMaildir });
}

export function upsertMailbox(m: MailboxRowLike): StateChange {
  return create(StateChangeSchema, { kind: { case: "upsertMailbox", value: mailboxToProto(m) } });
}

export function deleteMailbox(ascii: string, keepMaildir = false): StateChange {
  return create(StateChangeSchema, { kind: { case: "deleteMailbox", value: ascii }, keepMaildir });
}

export function upsertAlias(a: AliasRowLike): StateChange {
  return create(StateChangeSchema, { kind: { case: "upsertAlias", value: aliasToProto(a) } });
}

export function deleteAlias(source: string): StateChange {
  return create(StateChangeSchema, { kind: { case: "deleteAlias", value: source } });
}
