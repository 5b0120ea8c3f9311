import { defineEntity, p } from "@mikro-orm/core";

/** A vnode of the fleet: where its agent listens and how far its desired state has come. */
export const VnodeSchema = defineEntity({
  name: "Vnode",
  tableName: "vnodes",
  properties: {
    id: p.integer().primary().autoincrement(),
    name: p.string().unique(),
    address: p.string(),
    /** pending → enrolled → revoked */
    status: p.string().default("pending"),
    /** Desired-state generation the controller has compiled for this vnode. */
    generation: p.bigint("number").default(0),
    /** Generation the agent last reported as applied. */
    appliedGeneration: p.bigint("number").default(0),
    agentVersion: p.string().nullable(),
    lastHealthAt: p.datetime().nullable(),
    lastSeenAt: p.datetime().nullable(),
    /** FQDN the mail daemons greet with and present in TLS; defaults to the vnode name. */
    mailHostname: p.string().nullable(),
    /** Addresses the mail daemons listen on; null = all. */
    mailListen: p.json<string[]>().nullable(),
    rspamdEnabled: p.boolean().default(false),
    clamavEnabled: p.boolean().default(false),
    /** "addr:port" of the agent's HTTPS listener (MTA-STS, autoconfig); null = off. */
    webListen: p.string().nullable(),
    /** A directory an existing web server serves, where the agent writes the same files; null = none. */
    webDirectory: p.string().nullable(),
    /** "addr:port" of the agent's plain-HTTP listener for ACME HTTP-01 challenges; null = off. */
    httpListen: p.string().nullable(),
    /** Size of the vnode's mail filesystem as last reported by its agent. */
    fsCapacityBytes: p.bigint("number").nullable(),
    /** The generation the agent last refused (its checker's words in refusedReason); null = none. */
    refusedGeneration: p.bigint("number").nullable(),
    refusedReason: p.text().nullable(),
    refusedAt: p.datetime().nullable(),
    /** Refusals of refusedGeneration so far (the retry backoff doubles with each). */
    refusedCount: p.integer().default(0),
    /** When the reconciler sends a refused state again. */
    retryAt: p.datetime().nullable(),
    /** Pins of the CAs the agent last confirmed it trusts (UpdateTrust); null = not yet asked. */
    trustedCaPins: p.json<string[]>().nullable(),
    trustUpdatedAt: p.datetime().nullable(),
    /** "unmanaged" while the agent keeps its hands off the vnode's mail; null/"managed" otherwise. */
    management: p.string().nullable(),
    /** Why the agent reports the vnode unmanaged. */
    managementReason: p.text().nullable(),
    createdAt: p.datetime().onCreate(() => new Date()),
    updatedAt: p
      .datetime()
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
  },
});

export class Vnode extends VnodeSchema.class {}
VnodeSchema.setClass(Vnode);

/** The name the vnode's mail daemons greet with and present in TLS. */
export function mailHostnameOf(vnode: Pick<Vnode, "name" | "mailHostname">): string {
  return vnode.mailHostname ?? vnode.name;
}
