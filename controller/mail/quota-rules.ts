// Quota rules: a mailbox quota within its domain's per-mailbox limit, and — once the vnode's
// agent has reported the size of its mail filesystem — the sum of all quotas on the vnode within
// that size, unless the domain allows overcommit. An unlimited quota (0) cannot be fitted into
// a known capacity, so it needs overcommit too.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { conflict, invalid } from "../../common/errors.ts";
import type { NetservaError } from "../../common/errors.ts";
import { MAX_QUOTA_BYTES, formatQuota } from "../../common/validation/index.ts";

export const DEFAULT_QUOTA = 1024 ** 3; // 1G, NetServa's usual MQUOTA

export interface QuotaDomain {
  domain: string;
  maxQuota: number;
  overcommit: boolean;
}

/** A size for a message: "2G" when exact, otherwise GiB with two decimals. */
export function showSize(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_QUOTA_BYTES) return `${bytes} bytes`;
  const exact = formatQuota(bytes);
  return /^[0-9]+$/.test(exact) && bytes >= 1024 ** 2 ? `${(bytes / 1024 ** 3).toFixed(2)}G` : exact;
}

/** Checks a mailbox quota (bytes) against the domain's per-mailbox limit. */
export function checkMailboxQuota(quota: number, domain: QuotaDomain, field = "quota"): number {
  const max = Number(domain.maxQuota);
  if (max > 0 && (quota === 0 || quota > max)) {
    const what = quota === 0 ? "unlimited" : formatQuota(quota);
    throw invalid(
      field,
      `quota ${what} is over the limit of ${formatQuota(max)} per mailbox on ${domain.domain}; give a smaller quota or raise the domain's max quota`,
    );
  }
  return quota;
}

/** The sum of the quotas of every mailbox on the vnode, optionally leaving one out (a change). */
export async function vnodeQuotaSum(em: SqlEntityManager, vnodeId: number, exceptMailboxId?: number): Promise<number> {
  const rows = await em.execute<Array<{ total: string | number }>>(
    `select coalesce(sum(b.quota), 0) as total from mail_vboxes b join mail_vhosts d on d.id = b.domain_id where d.vnode_id = ?${exceptMailboxId === undefined ? "" : " and b.id <> ?"}`,
    exceptMailboxId === undefined ? [vnodeId] : [vnodeId, exceptMailboxId],
  );
  return Number(rows[0]?.total ?? 0);
}

export interface CapacityCheck {
  em: SqlEntityManager;
  vnodeId: number;
  vnodeName: string;
  capacity: number | undefined;
  domain: QuotaDomain;
  quota: number;
  exceptMailboxId?: number;
  field?: string;
}

export async function checkCapacity(c: CapacityCheck): Promise<void> {
  if (c.capacity === undefined || c.domain.overcommit) return;
  const allocated = c.quota === 0 ? 0 : await vnodeQuotaSum(c.em, c.vnodeId, c.exceptMailboxId);
  const refusal = capacityRefusal({ ...c, capacity: c.capacity, allocated });
  if (refusal) throw refusal;
}

/** The refusal when `quota` more does not fit beside `allocated` (pure, for batches too). */
export function capacityRefusal(c: {
  capacity: number;
  allocated: number;
  quota: number;
  vnodeName: string;
  domain: QuotaDomain;
  field?: string;
}): NetservaError | undefined {
  const field = c.field ?? "quota";
  const room = `vnode '${c.vnodeName}' has ${showSize(c.capacity)} of mail storage`;
  if (c.quota === 0)
    return invalid(
      field,
      `an unlimited quota cannot be guaranteed: ${room}; give a quota, or allow overcommit on ${c.domain.domain}`,
    );
  if (c.allocated + c.quota <= c.capacity) return undefined;
  return conflict(
    `${field}: ${room} and ${showSize(c.allocated)} is already promised to mailboxes; ${showSize(c.quota)} more does not fit. Give a smaller quota, or allow overcommit on ${c.domain.domain}`,
    "failed_precondition",
  );
}
