// Which hosted domains have an ACME certificate, kept in step with the domains themselves by the
// sweep: on a vnode with an ACME policy, every active domain that asked for MTA-STS (or, with
// `--all-domains`, every active domain) gets an order, due at once, so adding a domain needs no
// separate command; a domain that asked for MTA-STS after its order was made gets mta-sts.<domain>
// added; an order whose domain is no longer hosted on its vnode is dropped with the certificate
// it stored (not renewed, not served), and the vnode's generation bumped so the next push says so.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { AcmeCertificate, AcmeVnodePolicy, MailCertificate } from "../db/entities/index.ts";
import { bumpGeneration, lockVnode } from "../db/generation.ts";
import { domainCertificateNames, domainPurpose } from "./acme-mail-host.ts";

const DOMAIN_PREFIX = "domain:";

interface HostedRow {
  domain: string;
  active: boolean;
  mta_sts: boolean | null;
}

export interface DomainReconcileResult {
  /** Orders made for domains nobody named. */
  added: Array<{ vnode: string; domain: string }>;
  /** Orders whose names changed (mta-sts asked for later). */
  widened: Array<{ vnode: string; domain: string }>;
  /** Orders (and their certificates) dropped because the domain left the vnode. */
  removed: Array<{ vnode: string; domain: string }>;
  /** Vnodes whose generation was bumped (their served certificates changed). */
  bumped: string[];
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",");
}

export async function reconcileDomainOrders(
  em: SqlEntityManager,
  owns: ((vnode: string) => boolean) | undefined,
): Promise<DomainReconcileResult> {
  const result: DomainReconcileResult = { added: [], widened: [], removed: [], bumped: [] };
  const connection = em.getConnection();
  const vnodeIds = await connection.execute<Array<{ id: number; name: string }>>(
    `select v.id, v.name from vnodes v
     where exists (select 1 from acme_vnode_policies p where p.vnode_id = v.id)
        or exists (select 1 from acme_certificates a where a.vnode_id = v.id and a.purpose like 'domain:%')
     order by v.name`,
  );
  for (const { id: vnodeId, name: vnode } of vnodeIds) {
    if (owns && !owns(vnode)) continue;
    const hosted = new Map(
      (
        await connection.execute<HostedRow[]>(
          `select d.domain, d.active, p.mta_sts from mail_vhosts d
           left join mail_dns_policies p on p.domain_id = d.id where d.vnode_id = ?`,
          [vnodeId],
        )
      ).map((r) => [r.domain, r]),
    );
    await em.fork().transactional(async (tx) => {
      await lockVnode(tx, vnodeId);
      const policy = await tx.findOne(AcmeVnodePolicy, { vnodeId });
      const orders = await tx.find(AcmeCertificate, { vnodeId, purpose: { $like: `${DOMAIN_PREFIX}%` } });
      let changed = false;
      for (const order of orders) {
        const domain = order.purpose.slice(DOMAIN_PREFIX.length);
        const row = hosted.get(domain);
        if (row === undefined) {
          // Gone from this vnode (deleted, or moved elsewhere): no renewal, nothing served for it.
          const stored = await tx.find(MailCertificate, { vnodeId, issuer: "acme" });
          for (const c of stored) if (c.names.some((n) => order.names.includes(n))) tx.remove(c);
          tx.remove(order);
          result.removed.push({ vnode, domain });
          changed = true;
          continue;
        }
        const names = domainCertificateNames(domain, {
          mtaSts: row.mta_sts === true,
          mailName: order.names.includes(`mail.${domain}`),
        });
        if (!sameNames(names, order.names) && names.length > order.names.length && order.failures === 0) {
          Object.assign(order, { names, nextAttemptAt: new Date() });
          result.widened.push({ vnode, domain });
        }
      }
      if (policy) {
        const ordered = new Set(orders.map((o) => o.purpose));
        for (const row of hosted.values()) {
          if (!row.active || ordered.has(domainPurpose(row.domain))) continue;
          if (!policy.allDomains && row.mta_sts !== true) continue;
          tx.create(AcmeCertificate, {
            vnodeId,
            purpose: domainPurpose(row.domain),
            state: "pending",
            serverUrl: policy.serverUrl,
            serverCaPem: policy.serverCaPem ?? null,
            email: policy.email ?? null,
            challenge: policy.challenge,
            names: domainCertificateNames(row.domain, { mtaSts: row.mta_sts === true, mailName: policy.mailName }),
            nextAttemptAt: new Date(),
            failures: 0,
          });
          result.added.push({ vnode, domain: row.domain });
        }
      }
      await tx.flush();
      if (changed) {
        await bumpGeneration(tx, vnodeId);
        result.bumped.push(vnode);
      }
    });
  }
  return result;
}
