// DKIM keys in the controller database. Any change to the set of signing (active) keys bumps the
// vnode's generation in the same transaction and updates the domain's DKIM reference
// (mail_vhosts.dkim_selector / dkim_algorithm, comma-separated when several keys sign), so the
// compiler puts exactly the active keys into the vnode's desired state.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { notFound } from "../../common/errors.ts";
import { parseDomain } from "../../common/validation/index.ts";
import { DkimKeyRow, VMailDomain } from "../db/entities/index.ts";
import type { Vnode } from "../db/entities/index.ts";
import { findVnode } from "../fleet/vnode-service.ts";
import { bumpGeneration } from "../db/generation.ts";
import type { DkimAlgorithm, GeneratedDkimKey } from "./dkim-keygen.ts";

export type DkimState = "pending" | "active" | "retired";

/** A key as shown and published: never the private part. */
export interface DkimKeyInfo {
  selector: string;
  algorithm: DkimAlgorithm;
  bits: number | null;
  publicKey: string;
  state: DkimState;
}

export interface DomainOnVnode {
  vnode: Vnode;
  domain: VMailDomain;
}

export async function domainOnVnode(
  em: SqlEntityManager,
  vnodeName: string,
  domainInput: string,
): Promise<DomainOnVnode> {
  const ascii = parseDomain(domainInput, "domain").ascii;
  const vnode = await findVnode(em, vnodeName);
  const domain = await em.findOne(VMailDomain, { domain: ascii });
  if (!domain || domain.vnodeId !== vnode.id)
    throw notFound(
      `mail domain ${ascii} is not hosted on vnode ${vnode.name}: add it with \`addvmaildomain ${vnode.name} ${ascii}\``,
    );
  return { vnode, domain };
}

const info = (r: DkimKeyRow): DkimKeyInfo => ({
  selector: r.selector,
  algorithm: r.algorithm as DkimAlgorithm,
  bits: r.bits ?? null,
  publicKey: r.publicKey,
  state: r.state as DkimState,
});

export async function listDkimKeys(em: SqlEntityManager, domainId: number): Promise<DkimKeyInfo[]> {
  const rows = await em.fork().find(DkimKeyRow, { domainId }, { orderBy: { createdAt: "asc", id: "asc" } });
  return rows.map(info);
}

async function refreshDomainReference(tx: SqlEntityManager, domainId: number): Promise<void> {
  const active = await tx.find(
    DkimKeyRow,
    { domainId, state: "active" },
    { orderBy: { algorithm: "desc", selector: "asc" } },
  );
  await tx.nativeUpdate(
    VMailDomain,
    { id: domainId },
    {
      dkimSelector: active.length > 0 ? active.map((k) => k.selector).join(",") : null,
      dkimAlgorithm: active.length > 0 ? active.map((k) => k.algorithm).join(",") : null,
    },
  );
}

/** Stores new keys; `active` ones sign at once (generation bumped), `pending` ones wait. */
export async function storeDkimKeys(
  em: SqlEntityManager,
  target: DomainOnVnode,
  keys: ReadonlyArray<GeneratedDkimKey & { selector: string }>,
  state: "pending" | "active",
): Promise<number | null> {
  return em.transactional(async (tx) => {
    const now = new Date();
    for (const k of keys) {
      tx.create(DkimKeyRow, {
        domainId: target.domain.id,
        selector: k.selector,
        algorithm: k.algorithm,
        bits: k.bits,
        privateKeyPem: k.privateKeyPem,
        publicKey: k.publicKey,
        state,
        activatedAt: state === "active" ? now : null,
        retiredAt: null,
        createdAt: now,
      });
    }
    await tx.flush();
    if (state !== "active") return null;
    await refreshDomainReference(tx, target.domain.id);
    return bumpGeneration(tx, target.vnode.id);
  });
}

/** The switch of a rotation: pending keys sign from now on, the active ones retire. */
export async function activatePending(em: SqlEntityManager, target: DomainOnVnode): Promise<number> {
  return em.transactional(async (tx) => {
    const now = new Date();
    await tx.nativeUpdate(
      DkimKeyRow,
      { domainId: target.domain.id, state: "active" },
      { state: "retired", retiredAt: now },
    );
    await tx.nativeUpdate(
      DkimKeyRow,
      { domainId: target.domain.id, state: "pending" },
      { state: "active", activatedAt: now },
    );
    await refreshDomainReference(tx, target.domain.id);
    return bumpGeneration(tx, target.vnode.id);
  });
}

/** Forgets retired keys (they no longer sign, so the vnode's state does not change). */
export async function removeRetired(em: SqlEntityManager, domainId: number): Promise<number> {
  return em.fork().nativeDelete(DkimKeyRow, { domainId, state: "retired" });
}

/** Forgets pending keys whose record could not be published (undo of a failed start). */
export async function removePending(
  em: SqlEntityManager,
  domainId: number,
  selectors: readonly string[],
): Promise<void> {
  await em.fork().nativeDelete(DkimKeyRow, { domainId, state: "pending", selector: { $in: [...selectors] } });
}
