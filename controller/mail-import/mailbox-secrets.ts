// What an export needs beyond the mailbox views: each mailbox's stored password hash (so the
// re-imported mailbox keeps its password) and its Sieve script. A read of the stored rows only;
// the views stay free of hashes, so no listing can leak one.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { notFound } from "../../common/errors.ts";
import { parseVnodeName } from "../../common/validation/names.ts";
import { VMailDomain, VMailbox, Vnode } from "../db/entities/index.ts";

export async function mailboxSecrets(
  em: SqlEntityManager,
  vnodeName: string,
): Promise<Map<string, { passwordHash: string; sieve: string | null }>> {
  const vnode = await em.findOne(Vnode, { name: parseVnodeName(vnodeName) });
  if (!vnode) throw notFound(`vnode ${vnodeName} is not known; see \`netserva-mail status\``);
  const domains = await em.find(VMailDomain, { vnodeId: vnode.id }, { fields: ["id"] });
  const out = new Map<string, { passwordHash: string; sieve: string | null }>();
  if (domains.length === 0) return out;
  const boxes = await em.find(
    VMailbox,
    { domainId: { $in: domains.map((d) => d.id) } },
    { fields: ["ascii", "passwordHash", "sieveScript"] },
  );
  for (const box of boxes) out.set(box.ascii, { passwordHash: box.passwordHash, sieve: box.sieveScript ?? null });
  return out;
}
