// The fleet: a link to every enrolled vnode, health written to the database, revocations pushed
// to agents. The vnode list is re-read periodically so enrollments and revocations take effect
// without a restart. A renewed controller certificate (setIdentity) is used by every link from
// then on: each moves onto a new connection made with it.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { UpdateRevocationsRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { HealthReport } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import { Vnode } from "../db/entities/index.ts";
import { revokedSerials } from "../pki/certificate-records.ts";
import { createVnodeLink } from "./vnode-link.ts";
import type { VnodeLink } from "./vnode-link.ts";
import type { DeliverService } from "./deliver.ts";
import { createReconciler } from "./reconciler.ts";
import { createHealthWriter } from "../health/save-health.ts";
import type { HistoryPolicy } from "../health/health-history.ts";
import { syncMailboxUsage } from "../health/mailbox-usage-sync.ts";

export interface FleetOptions {
  db: Database;
  caPem: string;
  certPem: string;
  keyPem: string;
  log: Logger;
  healthIntervalMs?: number;
  /** With it the fleet reconciles: a vnode that lags its generation or drifts gets the whole state. */
  deliver?: DeliverService;
  /** Reconciler tuning (tests). */
  lagGraceMs?: number;
  digestCheckMs?: number;
  staleAfterMs?: number;
  refreshMs?: number;
  /** Mail health history sampling (default one sample a minute, kept a day). */
  historyPolicy?: HistoryPolicy;
  /** How often each vnode's full mailbox usage list is fetched (default 5 min; 0 = never). */
  usageSyncMs?: number;
}

export interface Fleet {
  link(vnode: string): VnodeLink | undefined;
  refresh(): Promise<void>;
  setIdentity(certPem: string, keyPem: string): void;
  close(): Promise<void>;
}

export function startFleet(options: FleetOptions): Fleet {
  const links = new Map<string, { link: VnodeLink; address: string }>();
  let revoked = new Set<string>();
  let revokedKey = "";
  let closed = false;
  let identity = { certPem: options.certPem, keyPem: options.keyPem };

  const health = createHealthWriter(options.historyPolicy);
  const usageSyncedAt = new Map<number, number>();
  const saveReport = async (vnodeId: number, report: HealthReport): Promise<void> => {
    await health.save(options.db.em(), vnodeId, report);
  };
  /** The whole mailbox usage list now and then (the report carries only the top mailboxes). */
  const maybeSyncUsage = async (vnodeId: number, link: VnodeLink): Promise<void> => {
    const every = options.usageSyncMs ?? 300_000;
    const last = usageSyncedAt.get(vnodeId);
    if (every <= 0 || (last !== undefined && Date.now() - last < every)) return;
    usageSyncedAt.set(vnodeId, Date.now());
    await syncMailboxUsage(options.db.em(), link.client, vnodeId);
  };

  const reconciler = options.deliver
    ? createReconciler({
        db: options.db,
        deliver: options.deliver,
        log: options.log,
        ...(options.lagGraceMs !== undefined ? { lagGraceMs: options.lagGraceMs } : {}),
        ...(options.digestCheckMs !== undefined ? { digestCheckMs: options.digestCheckMs } : {}),
      })
    : undefined;

  const pushRevocations = (link: VnodeLink): void => {
    const request = create(UpdateRevocationsRequestSchema, {
      meta: create(CommandMetaSchema, { requestId: randomUUID(), actor: "controller" }),
      revokedSerials: [...revoked],
    });
    link.client
      .call("updateRevocations", request)
      .catch((error: unknown) => options.log.warn("revocation push failed", { error: String(error) }));
  };

  const refresh = async (): Promise<void> => {
    if (closed) return;
    const em = options.db.em();
    revoked = new Set(await revokedSerials(em));
    const key = [...revoked].sort().join(",");
    const revocationsChanged = key !== revokedKey;
    revokedKey = key;
    const vnodes = await em.find(Vnode, { status: "enrolled" });
    const wanted = new Map(vnodes.map((v) => [v.name, v]));
    for (const [name, entry] of links) {
      const vnode = wanted.get(name);
      if (!vnode || vnode.address !== entry.address || revocationsChanged) {
        // Revoked or moved: drop the connection at once (a new one re-checks the certificate).
        entry.link.close();
        links.delete(name);
      }
    }
    for (const vnode of vnodes) {
      if (links.has(vnode.name)) continue;
      const log = options.log.child({ vnode: vnode.name });
      const link = createVnodeLink({
        vnode: vnode.name,
        address: vnode.address,
        caPem: options.caPem,
        certPem: identity.certPem,
        keyPem: identity.keyPem,
        isRevoked: (serial) => revoked.has(serial),
        intervalMs: options.healthIntervalMs ?? 5000,
        staleAfterMs: options.staleAfterMs ?? 12_000,
        log,
        onReport: (report) => {
          saveReport(vnode.id, report)
            .then(() => reconciler?.onReport(vnode.id, report))
            .then(() => (report.mail ? maybeSyncUsage(vnode.id, link) : undefined))
            .catch((error: unknown) => log.warn("saving health failed", { error: String(error) }));
        },
        onDown: () => {
          // Down is recorded at once, so `status` does not wait for the 15 s window.
          options.db
            .em()
            .nativeUpdate(Vnode, { id: vnode.id }, { lastSeenAt: null })
            .catch(() => undefined);
        },
      });
      links.set(vnode.name, { link, address: vnode.address });
      pushRevocations(link);
    }
  };

  const timer = setInterval(
    () => void refresh().catch((error: unknown) => options.log.warn("fleet refresh failed", { error: String(error) })),
    options.refreshMs ?? 2000,
  );
  void refresh().catch((error: unknown) => options.log.warn("fleet refresh failed", { error: String(error) }));
  return {
    link: (name) => links.get(name)?.link,
    refresh,
    setIdentity(certPem, keyPem) {
      identity = { certPem, keyPem };
      for (const entry of links.values()) entry.link.setIdentity(certPem, keyPem);
    },
    async close() {
      closed = true;
      clearInterval(timer);
      for (const entry of links.values()) entry.link.close();
      links.clear();
    },
  };
}
