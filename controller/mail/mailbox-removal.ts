// What deleting a mailbox does to the aliases that point at it: the address is dropped from
// aliases that have other targets; aliases left with no target are removed when the caller
// allows it (and then dropped from aliases pointing at them, and so on), otherwise the deletion
// is refused, naming them. Returns the lookup changes for the agent.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { conflict } from "../../common/errors.ts";
import type { StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { VMailAlias } from "../db/entities/index.ts";
import { aliasesPointingAt } from "./mail-lookups.ts";
import { deleteAlias, upsertAlias } from "./state-changes.ts";

export interface AliasFixup {
  changes: StateChange[];
  removedAliases: string[];
}

export async function fixAliasesFor(
  em: SqlEntityManager,
  address: string,
  removeAliases: boolean,
  now: Date,
): Promise<AliasFixup> {
  const gone = new Set([address]);
  const removed: string[] = [];
  const updated = new Map<string, { id: number; source: string; targets: string[]; active: boolean }>();
  let queue = [address];
  while (queue.length > 0) {
    const next: string[] = [];
    for (const target of queue) {
      for (const alias of await aliasesPointingAt(em, target)) {
        if (gone.has(alias.source)) continue;
        const current = updated.get(alias.source) ?? {
          id: alias.id,
          source: alias.source,
          targets: [...alias.targets],
          active: alias.active,
        };
        current.targets = current.targets.filter((t) => !gone.has(t));
        if (current.targets.length > 0) {
          updated.set(alias.source, current);
          continue;
        }
        updated.delete(alias.source);
        gone.add(alias.source);
        removed.push(alias.source);
        next.push(alias.source);
      }
    }
    queue = next;
  }
  if (removed.length > 0 && !removeAliases) {
    throw conflict(
      `${address} is the only target of ${removed.join(", ")}; these aliases would point nowhere. Remove them too (delvmail --remove-aliases), or point them elsewhere first (chvalias)`,
      "failed_precondition",
    );
  }
  const changes: StateChange[] = [];
  for (const alias of updated.values()) {
    await em.nativeUpdate(VMailAlias, { id: alias.id }, { targets: alias.targets, updatedAt: now });
    changes.push(upsertAlias(alias));
  }
  if (removed.length > 0) await em.nativeDelete(VMailAlias, { source: { $in: removed } });
  for (const source of removed) changes.push(deleteAlias(source));
  return { changes, removedAliases: removed };
}
