// The mail TLS sweep: `serve` looks for CA-issued mail certificates near expiry (hourly by
// default) and renews them, so a vnode that only ever receives incremental changes still gets a
// new certificate in time. A renewal bumps the vnode's generation and goes out through the one
// deliver service; an unreachable vnode gets it from the reconciler when it is back (it lags its
// generation). Operator certificates are never touched.
import { NetservaError } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import { audited } from "../audit/audit.ts";
import { MailTls, Vnode } from "../db/entities/index.ts";
import type { Database } from "../db/open-database.ts";
import { fromAnotherCa, mailTlsRenewBeforeMs, renewMailTlsIfDue } from "./mail-tls.ts";
import type { MailTlsIssuer } from "./mail-tls.ts";

export const MAIL_TLS_SWEEP_MS = 3600_000;

export interface MailTlsSweepOptions {
  db: Database;
  /** The fleet's deliver service; only this much of it (pki stays below the fleet). */
  deliver: { deliver(request: { vnode: string; actor: string }): Promise<{ pushed: boolean; reason?: string }> };
  issuer: MailTlsIssuer;
  log: Logger;
  /** Default hourly; 0 = only when asked. */
  intervalMs?: number;
  /** Counts renewals (the controller's metrics). */
  onRenewal?(result: "ok" | "failed"): void;
  /** Several controllers: only the vnodes whose lease we hold, so each renewal happens once. */
  owns?: (vnode: string) => boolean;
}

export interface MailTlsSweep {
  /** One pass now; resolves with the number of certificates renewed. */
  sweep(): Promise<number>;
  stop(): void;
}

export function startMailTlsSweep(options: MailTlsSweepOptions): MailTlsSweep {
  let running: Promise<number> | undefined;

  const renewOne = async (vnode: Vnode): Promise<boolean> => {
    const log = options.log.child({ vnode: vnode.name });
    const em = options.db.em().fork();
    try {
      const generation = await audited(
        em,
        { actor: "controller", command: "mail:tls renew", vnodeName: vnode.name, args: { reason: "due" } },
        () => renewMailTlsIfDue(em, vnode, options.issuer),
      );
      if (generation === null) return false; // renewed meanwhile by a whole-state push
      options.onRenewal?.("ok");
      const outcome = await options.deliver.deliver({ vnode: vnode.name, actor: "mail-tls-renewal" });
      if (outcome.pushed) log.info("mail TLS certificate renewed and delivered", { generation });
      else log.warn("mail TLS certificate renewed; delivery pending", { generation, reason: outcome.reason });
      return true;
    } catch (error) {
      options.onRenewal?.("failed");
      log.warn("mail TLS renewal failed; retrying at the next sweep", { error: NetservaError.from(error).message });
      return false;
    }
  };

  const pass = async (): Promise<number> => {
    const em = options.db.em().fork();
    const horizon = new Date(Date.now() + mailTlsRenewBeforeMs(options.issuer));
    const soon = await em.find(MailTls, { source: "ca", notAfter: { $lte: horizon } }, { fields: ["vnodeId"] });
    // After a CA rotation, the certificates the old CA issued are replaced whatever their expiry.
    const { caCertPem } = options.issuer.signingCa();
    const others = await em.find(
      MailTls,
      { source: "ca", notAfter: { $gt: horizon } },
      { fields: ["vnodeId", "certificateChainPem"] },
    );
    const due = [...soon, ...others.filter((row) => fromAnotherCa(row.certificateChainPem, caCertPem))];
    if (due.length === 0) return 0;
    const vnodes = await em.find(Vnode, { id: { $in: due.map((row) => row.vnodeId) }, status: "enrolled" });
    let renewed = 0;
    // One vnode at a time: each costs a key generation and a whole-state push.
    for (const vnode of vnodes) if ((options.owns?.(vnode.name) ?? true) && (await renewOne(vnode))) renewed += 1;
    return renewed;
  };

  const sweep = (): Promise<number> => {
    running ??= pass().finally(() => (running = undefined));
    return running;
  };

  const interval = options.intervalMs ?? MAIL_TLS_SWEEP_MS;
  const timer =
    interval > 0
      ? setInterval(
          () =>
            void sweep().catch((error: unknown) =>
              options.log.warn("mail TLS sweep failed", { error: NetservaError.from(error).message }),
            ),
          interval,
        )
      : undefined;
  timer?.unref();
  return { sweep, stop: () => clearInterval(timer) };
}
