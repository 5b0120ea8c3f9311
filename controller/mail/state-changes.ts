// Rows → the lookup changes an agent applies (netserva.mail.v1.StateChange). Only canonical
// keys travel: A-label domains, local@ascii-domain addresses, targets as stored.
import { create } from "@bufbuild/protobuf";
import {
  MailAliasSchema,
  MailDomainSchema,
  MailboxSchema,
  StateChangeSchema,
} from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";

export interface DomainRowLike {
  domain: string;
  active: boolean;
}

export interface MailboxRowLike {
  address: string;
  passwordHash: string;
  quota: number;
  active: boolean;
  sieveScript?: string | null | undefined;
  displayName: string;
}

export interface AliasRowLike {
  source: string;
  targets: readonly string[];
  active: boolean;
}

export function upsertDomain(d: DomainRowLike): StateChange {
  const value = create(MailDomainSchema, { domain: d.domain, active: d.active });
  return create(StateChangeSchema, { kind: { case: "upsertDomain", value } });
}

export function deleteDomain(domain: string, keepMaildir = false): StateChange {
  return create(StateChangeSchema, { kind: { case: "deleteDomain", value: domain }, keepMaildir });
}

export function upsertMailbox(m: MailboxRowLike): StateChange {
  const value = create(MailboxSchema, {
    address: m.address,
    passwordHash: m.passwordHash,
    quotaBytes: BigInt(m.quota),
    active: m.active,
    sieveScript: m.sieveScript ?? "",
    displayName: m.displayName,
  });
  return create(StateChangeSchema, { kind: { case: "upsertMailbox", value } });
}

export function deleteMailbox(address: string, keepMaildir = false): StateChange {
  return create(StateChangeSchema, { kind: { case: "deleteMailbox", value: address }, keepMaildir });
}

export function upsertAlias(a: AliasRowLike): StateChange {
  const value = create(MailAliasSchema, { source: a.source, targets: [...a.targets], active: a.active });
  return create(StateChangeSchema, { kind: { case: "upsertAlias", value } });
}

export function deleteAlias(source: string): StateChange {
  return create(StateChangeSchema, { kind: { case: "deleteAlias", value: source } });
}
