// One import row → service calls (domain and alias rows) or an addMany item (mailbox rows). The row's values are turned into the services' inputs
// (strings, numbers, flags) with their types checked; every rule on the values is the services'.
import { invalid } from "../../common/errors.ts";
import { parseActiveFlag } from "../../common/validation/names.ts";
import type { AddMailboxesInput, MailServices, MutationResult } from "../mail/mail-api.ts";
import type { ImportColumn, RawRow, RowKind } from "./rows.ts";
import { KIND_FIELDS, ROW_KINDS } from "./rows.ts";

export interface AppliedRow {
  kind: RowKind;
  results: Array<MutationResult<unknown>>;
}

type Values = RawRow["values"];

function text(values: Values, key: ImportColumn): string | undefined {
  const value = values[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string")
    throw invalid(key, `must be a string, got ${Array.isArray(value) ? "a list" : typeof value}`);
  return value;
}

function required(values: Values, key: ImportColumn, kind: RowKind): string {
  const value = text(values, key);
  if (value === undefined) throw invalid(key, `a ${kind} row needs ${key}`);
  return value;
}

/** Quotas: "2G" or a number of bytes (what export writes). */
function size(values: Values, key: ImportColumn): string | undefined {
  const value = values[key];
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0)
      throw invalid(key, `${value} is not a whole, non-negative number of bytes`);
    return String(value);
  }
  return text(values, key);
}

function count(values: Values, key: ImportColumn): number | undefined {
  const value = values[key];
  if (value === undefined) return undefined;
  // The shape only (digits or a JSON number); the bounds are the service's rule.
  const n = typeof value === "string" && /^[0-9]{1,15}$/.test(value) ? Number(value) : value;
  if (typeof n !== "number")
    throw invalid(key, `${JSON.stringify(value).slice(0, 24)} is not a whole number (0 = unlimited)`);
  return n;
}

function flag(values: Values, key: ImportColumn): boolean | undefined {
  const value = values[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string" && typeof value !== "boolean") throw invalid(key, "must be 1/0, true/false");
  return parseActiveFlag(value, key);
}

function targets(values: Values): string | string[] {
  const value = values.targets;
  if (value === undefined) throw invalid("targets", "an alias row needs targets");
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.every((t): t is string => typeof t === "string")) return value;
  throw invalid("targets", "must be a comma-separated string or a list of strings");
}

/** The row's kind, and no field that kind does not take. */
export function rowKind(values: Values): RowKind {
  const kind = values.kind;
  if (typeof kind !== "string" || !(ROW_KINDS as readonly string[]).includes(kind)) {
    throw invalid("kind", `${JSON.stringify(kind ?? "").slice(0, 24)} is not a row kind; use domain, mailbox or alias`);
  }
  const allowed = KIND_FIELDS[kind as RowKind];
  for (const key of Object.keys(values) as ImportColumn[]) {
    if (!allowed.includes(key)) throw invalid(key, `is not a field of a ${kind} row (it takes ${allowed.join(", ")})`);
  }
  return kind as RowKind;
}

export interface ApplyOptions {
  vnode: string;
  skipDnsCheck: boolean;
}

export type MailboxItem = AddMailboxesInput["mailboxes"][number];

/** A mailbox row as an item of `mailboxes.addMany` (rows are stored many per call). */
export function mailboxItem(values: Values): MailboxItem {
  if (rowKind(values) !== "mailbox") throw new Error("mailboxItem: not a mailbox row"); // caller's bug
  return {
    address: required(values, "address", "mailbox"),
    quota: size(values, "quota"),
    name: text(values, "name"),
    passwordHash: text(values, "passwordHash"),
    active: flag(values, "active"),
    sieve: text(values, "sieve"),
  };
}

/** A domain or alias row: one service call (and a change when the row is inactive). */
export async function applyRow(services: MailServices, values: Values, options: ApplyOptions): Promise<AppliedRow> {
  const kind = rowKind(values);
  const { vnode } = options;
  const active = flag(values, "active");
  if (kind === "domain") {
    const domain = required(values, "domain", kind);
    const added = await services.domains.add({
      vnode,
      domain,
      defaultQuota: size(values, "defaultQuota"),
      maxMailboxes: count(values, "maxMailboxes"),
      maxAliases: count(values, "maxAliases"),
      maxQuota: size(values, "maxQuota"),
      overcommit: flag(values, "overcommit"),
      skipDnsCheck: options.skipDnsCheck,
    });
    const results: Array<MutationResult<unknown>> = [added];
    if (active === false) results.push(await services.domains.change({ vnode, domain, active }));
    return { kind, results };
  }
  if (kind === "alias") {
    const source = required(values, "source", kind);
    const results: Array<MutationResult<unknown>> = [
      await services.aliases.add({ vnode, source, targets: targets(values) }),
    ];
    if (active === false) results.push(await services.aliases.change({ vnode, source, active }));
    return { kind, results };
  }
  throw new Error("applyRow: mailbox rows go through mailboxItem and addMany"); // caller's bug
}
