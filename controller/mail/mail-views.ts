// Rows → the views callers print: Unicode (U-label) domains for people beside the stored ASCII
// keys, sizes in bytes, ISO-8601 timestamps. Secrets never leave as anything but "(hash)".
import { storedScheme } from "../../common/password/stored-scheme.ts";
import { domainToUnicode } from "node:url";
import type { VConf, VMailAlias, VMailDomain, VMailbox } from "../db/entities/index.ts";
import type { AliasView, DomainView, MailboxView, VConfView } from "./mail-api.ts";

export const SECRET_SHOWN = "(hash)";

const iso = (d: Date | string): string => (d instanceof Date ? d : new Date(d)).toISOString();

/** The domain as people write it; falls back to the A-label if it does not decode. */
export function unicodeDomain(ascii: string): string {
  return domainToUnicode(ascii) || ascii;
}

/** local@unicode-domain from local@ascii-domain. */
export function unicodeAddress(address: string): string {
  const at = address.lastIndexOf("@");
  return `${address.slice(0, at)}@${unicodeDomain(address.slice(at + 1))}`;
}

export type DomainFields = Pick<
  VMailDomain,
  | "domain"
  | "active"
  | "defaultQuota"
  | "maxMailboxes"
  | "maxAliases"
  | "maxQuota"
  | "overcommit"
  | "dkimSelector"
  | "dkimAlgorithm"
  | "createdAt"
  | "updatedAt"
>;

export function domainView(d: DomainFields, vnode: string, counts: { mailboxes: number; aliases: number }): DomainView {
  return {
    domain: unicodeDomain(d.domain),
    ascii: d.domain,
    vnode,
    active: d.active,
    defaultQuota: Number(d.defaultQuota),
    maxMailboxes: d.maxMailboxes,
    maxAliases: d.maxAliases,
    maxQuota: Number(d.maxQuota),
    overcommit: d.overcommit,
    mailboxes: counts.mailboxes,
    aliases: counts.aliases,
    dkimSelector: d.dkimSelector ?? null,
    dkimAlgorithm: d.dkimAlgorithm ?? null,
    createdAt: iso(d.createdAt),
    updatedAt: iso(d.updatedAt),
  };
}

export type MailboxFields = Pick<
  VMailbox,
  | "ascii"
  | "displayName"
  | "quota"
  | "usage"
  | "active"
  | "maildir"
  | "sieveScript"
  | "passwordChangedAt"
  | "createdAt"
  | "updatedAt"
>;

/** The scheme of a stored hash, for views: named, never shown (adopted weak ones are flagged). */
function schemeOf(hash: string | undefined): { passwordScheme: string; weakPassword: boolean } {
  if (hash === undefined) return { passwordScheme: "", weakPassword: false };
  const { scheme, weak } = storedScheme(hash);
  return { passwordScheme: scheme, weakPassword: weak };
}

export function mailboxView(
  m: MailboxFields & { passwordHash?: string | undefined },
  vnode: string,
  aliases: string[],
): MailboxView {
  return {
    address: unicodeAddress(m.ascii),
    ascii: m.ascii,
    vnode,
    name: m.displayName,
    quota: Number(m.quota),
    usage: m.usage === null || m.usage === undefined ? null : Number(m.usage),
    active: m.active,
    maildir: m.maildir,
    hasSieve: m.sieveScript !== null && m.sieveScript !== undefined && m.sieveScript !== "",
    aliases,
    ...schemeOf(m.passwordHash),
    passwordChangedAt: iso(m.passwordChangedAt),
    createdAt: iso(m.createdAt),
    updatedAt: iso(m.updatedAt),
  };
}

export type AliasFields = Pick<VMailAlias, "source" | "targets" | "active" | "createdAt" | "updatedAt">;

/** Sources and targets as stored (the ASCII keys Postfix looks up), not converted for display. */
export function aliasView(a: AliasFields, vnode: string): AliasView {
  return {
    source: a.source,
    targets: [...a.targets],
    vnode,
    active: a.active,
    createdAt: iso(a.createdAt),
    updatedAt: iso(a.updatedAt),
  };
}

export function vconfView(v: Pick<VConf, "name" | "value" | "secret">, domainAscii: string): VConfView {
  return {
    domain: unicodeDomain(domainAscii),
    name: v.name,
    value: v.secret ? SECRET_SHOWN : v.value,
    secret: v.secret,
  };
}
