// Bulk import: rows in kind order (domains, then mailboxes, then aliases, each in file order),
// in batches of one transaction each. Mailbox rows go to the service in groups (addMany: set-
// based checks, one generation bump); domain and alias rows one at a time, each in a savepoint.
// A refused row is reported (row, field, reason) and nothing of it is stored; the rest of its
// batch is. A dry run does all the
// work in one transaction and rolls it back, so later rows see the earlier ones as they would.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import type { AddMailboxesOutcome, MailServices, MutationResult } from "../mail/mail-api.ts";
import type { MailboxItem } from "./apply-row.ts";
import { applyRow, mailboxItem } from "./apply-row.ts";
import type { ParsedFile, ReadRow, Refusal, RowKind } from "./rows.ts";
import { ROW_KINDS } from "./rows.ts";

export interface ImportOptions {
  em: SqlEntityManager;
  servicesFor(em: SqlEntityManager): MailServices;
  /** Put every row on this vnode (whatever the file says). */
  vnode?: string | undefined;
  dryRun: boolean;
  batchSize: number;
  skipDnsCheck: boolean;
  onProgress?(done: number, total: number): void;
  /** Called once after the last batch with all changes merged per vnode (to push them): one push
   * per vnode, not one per batch, so a 100,000-row import costs one full-state apply. */
  onBatch?(results: Array<MutationResult<unknown>>): Promise<void>;
}

export interface ImportReport {
  dryRun: boolean;
  rows: number;
  accepted: Record<RowKind, number>;
  refused: Refusal[];
  /** Passwords generated for mailbox rows without a hash: shown once, never stored in clear. */
  passwords: Array<{ row: number; address: string; password: string }>;
}

class DryRunRollback extends Error {}

const REFUSALS = new Set(["invalid_argument", "not_found", "already_exists", "failed_precondition"]);

/** Refusals name a mailbox's address "email" (the CLI's argument); an import row calls it "address". */
const COLUMN_OF: Readonly<Record<string, string>> = { email: "address" };

function refusalOf(row: number, error: NetservaError): Refusal {
  // Refusals name their field in `field`, or (conflicts, not found) as the message's "field: " prefix.
  const prefixed = /^([A-Za-z][A-Za-z0-9_]{0,39}): /.exec(error.message);
  const named = error.field ?? prefixed?.[1];
  const reason = prefixed && prefixed[1] === named ? error.message.slice(prefixed[0].length) : error.message;
  const field = named === undefined ? "row" : (COLUMN_OF[named] ?? named);
  return { row, field, reason };
}

/** Changes of many results, one merged result per vnode (the last generation wins). */
export function mergeResults(results: Array<MutationResult<unknown>>): Array<MutationResult<unknown>> {
  const byVnode = new Map<string, MutationResult<unknown>>();
  for (const r of results) {
    const prev = byVnode.get(r.vnode);
    byVnode.set(
      r.vnode,
      prev
        ? {
            ...r,
            changes: [...prev.changes, ...r.changes],
            generation: Math.max(prev.generation, r.generation),
            domainChanged: prev.domainChanged || r.domainChanged,
          }
        : { ...r, changes: [...r.changes] },
    );
  }
  return [...byVnode.values()];
}

export async function runImport(file: ParsedFile, options: ImportOptions): Promise<ImportReport> {
  const kindOrder = (row: ReadRow): number => {
    const i = (ROW_KINDS as readonly unknown[]).indexOf(row.values.kind);
    return i < 0 ? -1 : i;
  };
  // Stable sort: unreadable rows first (refused at once), then domains, mailboxes, aliases.
  const rows = [...file.rows].sort((a, b) => kindOrder(a) - kindOrder(b));
  const report: ImportReport = {
    dryRun: options.dryRun,
    rows: rows.length,
    accepted: { domain: 0, mailbox: 0, alias: 0 },
    refused: [],
    passwords: [],
  };
  let done = 0;

  const rowVnode = (row: ReadRow): string => {
    const value = options.vnode ?? row.values.vnode ?? file.vnode;
    if (typeof value !== "string" || value === "")
      throw new NetservaError("invalid_argument", "vnode: the row names no vnode; add a vnode column or pass --vnode", {
        field: "vnode",
      });
    return value;
  };
  const refuse = (row: ReadRow, reason: unknown): void => {
    const error = NetservaError.from(reason);
    if (!REFUSALS.has(error.code)) throw error;
    report.refused.push(refusalOf(row.row, error));
  };

  type BatchOutcome = {
    results: Array<MutationResult<unknown>>;
    passwords: ImportReport["passwords"];
    accepted: RowKind[];
  };

  /** Consecutive mailbox rows of one vnode: one addMany call (set-based checks, one log row). */
  const runMailboxes = async (
    services: MailServices,
    vnode: string,
    group: ReadRow[],
    out: BatchOutcome,
  ): Promise<void> => {
    const items: Array<{ row: ReadRow; item: MailboxItem }> = [];
    for (const row of group) {
      try {
        items.push({ row, item: mailboxItem(row.values) });
      } catch (reason) {
        refuse(row, reason);
      }
    }
    if (items.length === 0) return;
    let result: MutationResult<AddMailboxesOutcome>;
    try {
      result = await services.mailboxes.addMany({ vnode, mailboxes: items.map((i) => i.item) });
    } catch (reason) {
      for (const { row } of items) refuse(row, reason);
      return;
    }
    for (const { index, error } of result.value.refused) {
      const row = items[index]?.row;
      if (row) refuse(row, error);
    }
    for (const { index, mailbox, password } of result.value.added) {
      out.accepted.push("mailbox");
      const row = items[index]?.row;
      if (password !== undefined && row) out.passwords.push({ row: row.row, address: mailbox.address, password });
    }
    if (result.value.added.length) out.results.push(result);
  };

  const runBatch = async (em: SqlEntityManager, batch: ReadRow[]): Promise<BatchOutcome> => {
    const out: BatchOutcome = { results: [], passwords: [], accepted: [] };
    const services = options.servicesFor(em);
    for (let i = 0; i < batch.length;) {
      const row = batch[i] as ReadRow;
      let vnode: string;
      try {
        if (row.error)
          throw new NetservaError("invalid_argument", `${row.error.field}: ${row.error.reason}`, {
            field: row.error.field,
          });
        vnode = rowVnode(row);
      } catch (reason) {
        refuse(row, reason);
        options.onProgress?.(++done, rows.length);
        i++;
        continue;
      }
      if (row.values.kind === "mailbox") {
        let j = i + 1;
        while (j < batch.length) {
          const next = batch[j] as ReadRow;
          if (
            next.error ||
            next.values.kind !== "mailbox" ||
            (options.vnode ?? next.values.vnode ?? file.vnode) !== vnode
          )
            break;
          j++;
        }
        await runMailboxes(services, vnode, batch.slice(i, j), out);
        done += j - i;
        options.onProgress?.(done, rows.length);
        i = j;
        continue;
      }
      try {
        // A savepoint per row: a refusal undoes that row only (an inactive row is two calls).
        const applied = await em.transactional((rowEm) =>
          applyRow(options.servicesFor(rowEm), row.values, { vnode, skipDnsCheck: options.skipDnsCheck }),
        );
        out.results.push(...applied.results);
        out.accepted.push(applied.kind);
      } catch (reason) {
        refuse(row, reason);
      }
      options.onProgress?.(++done, rows.length);
      i++;
    }
    return out;
  };

  const count = (accepted: RowKind[]): void => {
    for (const kind of accepted) report.accepted[kind] += 1;
  };

  if (options.dryRun) {
    await options.em
      .transactional(async (em) => {
        for (let i = 0; i < rows.length; i += options.batchSize)
          count((await runBatch(em, rows.slice(i, i + options.batchSize))).accepted);
        throw new DryRunRollback();
      })
      .catch((reason: unknown) => {
        if (!(reason instanceof DryRunRollback)) throw reason;
      });
    report.refused.sort((a, b) => a.row - b.row);
    return report;
  }

  const committed: Array<MutationResult<unknown>> = [];
  for (let i = 0; i < rows.length; i += options.batchSize) {
    const batch = rows.slice(i, i + options.batchSize);
    const outcome = await options.em.transactional((em) => runBatch(em, batch));
    count(outcome.accepted);
    report.passwords.push(...outcome.passwords);
    committed.push(...outcome.results);
  }
  if (committed.length) await options.onBatch?.(mergeResults(committed));
  report.refused.sort((a, b) => a.row - b.row);
  return report;
}
