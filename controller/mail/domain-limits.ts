// A domain's limits may not be set below what it already holds: lowering max mailboxes, max
// aliases or the per-mailbox max quota under the current state is refused, naming the excess.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { conflict } from "../../common/errors.ts";
import type { NetservaError } from "../../common/errors.ts";
import { formatQuota } from "../../common/validation/index.ts";
import type { VMailDomain } from "../db/entities/index.ts";
import { countIn } from "./mail-lookups.ts";

type Limits = Pick<VMailDomain, "id" | "domain" | "maxMailboxes" | "maxAliases" | "maxQuota">;

export async function checkDomainLimits(em: SqlEntityManager, before: Limits, after: Limits): Promise<void> {
  const tighter = (a: number, b: number) => b > 0 && (a === 0 || b < a);
  if (tighter(before.maxMailboxes, after.maxMailboxes)) {
    const n = await countIn(em, "mail_vboxes", before.id);
    if (n > after.maxMailboxes)
      throw conflict(
        `maxMailboxes: ${before.domain} has ${n} mailboxes; remove some before lowering the limit to ${after.maxMailboxes}`,
        "failed_precondition",
      );
  }
  if (tighter(before.maxAliases, after.maxAliases)) {
    const n = await countIn(em, "mail_valias", before.id);
    if (n > after.maxAliases)
      throw conflict(
        `maxAliases: ${before.domain} has ${n} aliases; remove some before lowering the limit to ${after.maxAliases}`,
        "failed_precondition",
      );
  }
  const max = Number(after.maxQuota);
  if (tighter(Number(before.maxQuota), max)) {
    const rows = await em.execute<Array<{ ascii: string; quota: string | number }>>(
      "select address as ascii, quota from mail_vboxes where domain_id = ? and (quota = 0 or quota > ?) order by address limit 4",
      [before.id, max],
    );
    if (rows.length > 0) {
      const shown = rows
        .slice(0, 3)
        .map((r) => `${r.ascii} (${Number(r.quota) === 0 ? "unlimited" : formatQuota(Number(r.quota))})`)
        .join(", ");
      throw conflict(
        `maxQuota: mailboxes on ${before.domain} have larger quotas than ${formatQuota(max)}: ${shown}${rows.length > 3 ? ", …" : ""}; lower them first (chvmail --quota)`,
        "failed_precondition",
      );
    }
  }
}

/** The refusal when a domain holds `n` of its `kind` and that is its limit. */
export function domainFull(domain: Limits, kind: "mailbox" | "alias", n: number): NetservaError {
  const flag = kind === "mailbox" ? "--max-mailboxes" : "--max-aliases";
  return conflict(
    `${domain.domain} already has ${n} ${kind === "mailbox" ? "mailboxes" : "aliases"}, its limit; raise it (chvmaildomain ${flag}) or remove one first`,
    "failed_precondition",
  );
}

/** The domain's count limit when adding one: refuses when full. */
export async function checkRoomFor(em: SqlEntityManager, domain: Limits, kind: "mailbox" | "alias"): Promise<void> {
  const limit = kind === "mailbox" ? domain.maxMailboxes : domain.maxAliases;
  if (limit <= 0) return;
  const n = await countIn(em, kind === "mailbox" ? "mail_vboxes" : "mail_valias", domain.id);
  if (n >= limit) throw domainFull(domain, kind, n);
}
