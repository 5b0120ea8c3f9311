// Rules an alias's targets must keep, checked before anything is stored:
// - no self-target; a target on a domain we host (on any vnode) must exist as a mailbox or an
//   alias: a typo in a local address would otherwise bounce every message (an admin expects
//   `addvalias` to refuse it, as postfixadmin does); remote targets are taken as given;
// - no loops: following aliases (and catch-alls, for addresses that are neither a mailbox nor
//   an alias) from the targets must never come back to the source. Mailboxes end a path.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { invalid } from "../../common/errors.ts";

/** Postfix expands at most this deep (virtual_alias_recursion_limit 1000); we stop far earlier. */
const MAX_DEPTH = 32;

const domainOf = (address: string): string => address.slice(address.lastIndexOf("@") + 1);

async function existing(
  em: SqlEntityManager,
  table: "mail_vboxes" | "mail_valias",
  column: "address" | "source",
  keys: string[],
): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const rows = await em.execute<Array<{ key: string }>>(
    `select ${column} as key from ${table} where ${column} in (?)`,
    [keys],
  );
  return new Set(rows.map((r) => r.key));
}

export async function checkLocalTargets(
  em: SqlEntityManager,
  source: string,
  targets: readonly string[],
  field = "targets",
): Promise<void> {
  if (targets.includes(source)) throw invalid(field, `alias ${source} lists itself as a target, a loop; remove it`);
  const domains = [...new Set(targets.map(domainOf))];
  const hosted = new Set(
    (await em.execute<Array<{ domain: string }>>("select domain from mail_vhosts where domain in (?)", [domains])).map(
      (r) => r.domain,
    ),
  );
  const local = targets.filter((t) => hosted.has(domainOf(t)));
  if (local.length === 0) return;
  const found = new Set([
    ...(await existing(em, "mail_vboxes", "address", local)),
    ...(await existing(em, "mail_valias", "source", local)),
  ]);
  const missing = local.filter((t) => !found.has(t));
  if (missing.length > 0) {
    throw invalid(
      field,
      `target ${missing.join(", ")} is on a domain hosted here but is neither a mailbox nor an alias; add it first or fix the spelling`,
    );
  }
}

/**
 * Follows the alias graph from `targets` as if `source` pointed there, and refuses a path that
 * returns to `source`, naming it: "a@x → b@x → a@x". An address that is neither an alias nor a
 * mailbox leads to its domain's catch-all ("@x"), as in Postfix. One or two queries per level.
 */
export async function checkNoLoop(
  em: SqlEntityManager,
  source: string,
  targets: readonly string[],
  field = "targets",
): Promise<void> {
  const parent = new Map<string, string>();
  let level: string[] = [];
  const visit = (node: string, from: string) => {
    if (parent.has(node) && node !== source) return;
    parent.set(node, from);
    level.push(node);
  };
  for (const t of targets) visit(t, source);
  for (let depth = 0; level.length > 0 && depth < MAX_DEPTH; depth++) {
    if (level.includes(source)) {
      const path = [source];
      for (let at = parent.get(source); at !== undefined; at = at === source ? undefined : parent.get(at))
        path.unshift(at);
      throw invalid(field, `alias loop: ${path.join(" → ")}; mail would circle until it bounces`);
    }
    const current = level;
    level = [];
    const rows = await em.execute<Array<{ source: string; targets: string[] }>>(
      "select source, targets from mail_valias where source in (?)",
      [current],
    );
    const aliases = new Set(rows.map((r) => r.source));
    for (const row of rows) for (const t of row.targets) visit(t, row.source);
    const plain = current.filter((a) => !a.startsWith("@") && !aliases.has(a));
    if (plain.length === 0) continue;
    const boxes = await existing(em, "mail_vboxes", "address", plain);
    for (const a of plain) if (!boxes.has(a)) visit(`@${domainOf(a)}`, a);
  }
}
