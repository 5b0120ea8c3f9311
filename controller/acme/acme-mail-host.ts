// The vnode's mail host certificate from ACME. `requestMailHostAcme` records what the operator
// asked for (server, e-mail, challenge) and makes it due now; `runAcmeOrder` runs one due order:
// it claims the row (one controller process at a time, whichever sees it first), orders, and on
// success stores the certificate as the vnode's mail certificate (mail_tls, source "acme") and
// bumps the generation in one transaction, so it reaches the vnode like any desired state. A
// failure keeps whatever certificate is served, counts, records the error and backs off.
import { randomUUID } from "node:crypto";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { AcmeCertificate, MailTls, Vnode, mailHostnameOf } from "../db/entities/index.ts";
import { bumpGeneration, lockVnode } from "../db/generation.ts";
import { findVnode } from "../fleet/vnode-service.ts";
import type { DnsProvider } from "../dns/dns-provider.ts";
import { acmeClientFor } from "./acme-account.ts";
import { obtainCertificate } from "./acme-order.ts";
import type { IssuedCertificate } from "./acme-order.ts";
import { renewalAt, retryAt } from "./acme-schedule.ts";
import type { RetryPolicy } from "./acme-schedule.ts";
import type { ChallengeSolver, ChallengeType } from "./challenge-solver.ts";
import { createDns01Solver } from "./dns01-solver.ts";

export const MAIL_HOST = "mail-host";
/** How long a claim holds: longer than any order takes (polling is bounded well below this). */
const CLAIM_SECONDS = 600;

export interface AcmeRequestInput {
  vnode: string;
  serverUrl: string;
  serverCaPem: string | null;
  email: string | null;
  challenge: ChallengeType;
}

export async function requestMailHostAcme(em: SqlEntityManager, input: AcmeRequestInput): Promise<AcmeCertificate> {
  if (input.challenge === "http-01")
    throw new NetservaError(
      "failed_precondition",
      "challenge: http-01 (answered by the agent on the vnode) is not built yet; use dns-01 with a zone the DNS provider serves",
      { field: "challenge" },
    );
  return em.transactional(async (tx) => {
    const vnode = await findVnode(tx, input.vnode);
    const fields = {
      serverUrl: input.serverUrl,
      serverCaPem: input.serverCaPem,
      email: input.email,
      challenge: input.challenge,
      names: [mailHostnameOf(vnode)],
      nextAttemptAt: new Date(),
      failures: 0,
      lastError: null,
    };
    const row = await tx.findOne(AcmeCertificate, { vnodeId: vnode.id, purpose: MAIL_HOST });
    if (row) {
      Object.assign(row, fields);
      await tx.flush();
      return row;
    }
    const created = tx.create(AcmeCertificate, { vnodeId: vnode.id, purpose: MAIL_HOST, state: "pending", ...fields });
    await tx.flush();
    return created;
  });
}

export interface AcmeRunOptions {
  dns: DnsProvider | undefined;
  retry: RetryPolicy;
  /** Who claims (for the row; a random id per process by default). */
  owner?: string;
  /** Only when due (the sweep); the CLI runs the order it was just asked for. */
  onlyIfDue?: boolean;
  /** Replaces the DNS-01 solver (tests of the seam). */
  solver?: ChallengeSolver;
}

export type AcmeRunResult =
  | { outcome: "issued"; generation: number; certificate: IssuedCertificate; vnode: string }
  | { outcome: "failed"; error: NetservaError; vnode: string; failures: number; nextAttemptAt: Date }
  | { outcome: "busy" };

const processOwner = `controller-${process.pid}-${randomUUID().slice(0, 8)}`;

/** Claims the row for this process; false when another one holds it (or it is not due). */
async function claim(em: SqlEntityManager, id: number, owner: string, onlyIfDue: boolean): Promise<boolean> {
  const rows = await em.getConnection().execute<Array<{ id: number }>>(
    `update acme_certificates set claimed_by = ?, claimed_until = now() + interval '${CLAIM_SECONDS} seconds'
       where id = ? and (claimed_until is null or claimed_until < now())${onlyIfDue ? " and next_attempt_at <= now()" : ""}
       returning id`,
    [owner, id],
  );
  return rows.length === 1;
}

export async function runAcmeOrder(em: SqlEntityManager, id: number, options: AcmeRunOptions): Promise<AcmeRunResult> {
  const owner = options.owner ?? processOwner;
  if (!(await claim(em.fork(), id, owner, options.onlyIfDue ?? false))) return { outcome: "busy" };
  const row = await em.fork().findOneOrFail(AcmeCertificate, { id });
  const vnode = await em.fork().findOneOrFail(Vnode, { id: row.vnodeId });
  const names = [mailHostnameOf(vnode)];
  try {
    const client = await acmeClientFor(em, {
      serverUrl: row.serverUrl,
      serverCaPem: row.serverCaPem ?? null,
      email: row.email ?? null,
    });
    const issued = await obtainCertificate(client, names, options.solver ?? createDns01Solver(options.dns));
    const generation = await em.fork().transactional(async (tx) => {
      await lockVnode(tx, vnode.id);
      const fields = {
        source: "acme",
        hostname: names[0] ?? vnode.name,
        certificateChainPem: issued.chainPem,
        privateKeyPem: issued.keyPem,
        notAfter: issued.notAfter,
      };
      const current = await tx.findOne(MailTls, { vnodeId: vnode.id });
      if (current) Object.assign(current, fields);
      else tx.create(MailTls, { vnodeId: vnode.id, ...fields });
      await tx.nativeUpdate(
        AcmeCertificate,
        { id },
        {
          names,
          state: "valid",
          issuer: issued.issuer,
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
          nextAttemptAt: renewalAt(issued.notBefore, issued.notAfter),
          failures: 0,
          lastError: null,
          lastAttemptAt: new Date(),
          claimedBy: null,
          claimedUntil: null,
        },
      );
      await tx.flush();
      return bumpGeneration(tx, vnode.id);
    });
    return { outcome: "issued", generation, certificate: issued, vnode: vnode.name };
  } catch (reason) {
    const error = NetservaError.from(reason, "unavailable");
    const failures = row.failures + 1;
    const now = new Date();
    const nextAttemptAt = retryAt(now, failures, options.retry);
    await em.fork().nativeUpdate(
      AcmeCertificate,
      { id },
      {
        names,
        state: "failing",
        failures,
        lastError: error.message.slice(0, 1000),
        lastAttemptAt: now,
        nextAttemptAt,
        claimedBy: null,
        claimedUntil: null,
      },
    );
    return { outcome: "failed", error, vnode: vnode.name, failures, nextAttemptAt };
  }
}
