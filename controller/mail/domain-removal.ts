// Removing a domain: refused while it has active mailboxes (say how many and what to do) or
// while aliases on other domains still point into it; otherwise its aliases, inactive mailboxes
// and variables go with it, each as a lookup change for the agent.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { conflict } from "../../common/errors.ts";
import type { StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { VConf, VMailAlias, VMailDomain, VMailbox } from "../db/entities/index.ts";
import { countIn } from "./mail-lookups.ts";
import { deleteAlias, deleteDomain, deleteMailbox } from "./state-changes.ts";

type DomainRow = Pick<VMailDomain, "id" | "domain">;

export async function removeDomain(em: SqlEntityManager, d: DomainRow, keepMaildir: boolean): Promise<StateChange[]> {
  const active = await countIn(em, "mail_vboxes", d.id, true);
  if (active > 0) {
    throw conflict(
      `${d.domain} still has ${active} active mailbox${active === 1 ? "" : "es"}: delete ${active === 1 ? "it" : "them"} (delvmail) or deactivate ${active === 1 ? "it" : "them"} (chvmail --active 0) first`,
      "failed_precondition",
    );
  }
  const inbound = await em.execute<Array<{ source: string }>>(
    `select source from mail_valias a where domain_id <> ? and exists (select 1 from jsonb_array_elements_text(a.targets) t(target) where t.target like ?) order by source limit 6`,
    [d.id, `%@${d.domain}`],
  );
  if (inbound.length > 0) {
    const names = inbound
      .slice(0, 5)
      .map((r) => r.source)
      .join(", ");
    throw conflict(
      `aliases on other domains still point into ${d.domain}: ${names}${inbound.length > 5 ? ", …" : ""}; change or remove them first`,
      "failed_precondition",
    );
  }
  const aliases = await em.execute<Array<{ source: string }>>(
    "select source from mail_valias where domain_id = ? order by source",
    [d.id],
  );
  const boxes = await em.execute<Array<{ ascii: string }>>(
    "select address as ascii from mail_vboxes where domain_id = ? order by address",
    [d.id],
  );
  await em.nativeDelete(VMailAlias, { domainId: d.id });
  await em.nativeDelete(VMailbox, { domainId: d.id });
  await em.nativeDelete(VConf, { domainId: d.id });
  await em.nativeDelete(VMailDomain, { id: d.id });
  return [
    ...aliases.map((a) => deleteAlias(a.source)),
    ...boxes.map((b) => deleteMailbox(b.ascii, keepMaildir)),
    deleteDomain(d.domain, keepMaildir),
  ];
}
