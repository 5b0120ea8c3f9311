// A vnode's certificates from ACME. `requestMailHostAcme` / `requestDomainAcme` record what the
// operator asked for (server, e-mail, challenge; for a hosted domain the names it publishes) and
// make it due now; `runAcmeOrder` runs one due order: it claims the row (one controller process at
// a time, whichever sees it first), orders, and on success stores the certificate — the mail host
// one as the vnode's mail certificate (mail_tls, source "acme"), a domain's in the per-name seam
// (mail_certificates, issuer "acme", served by SNI) — and bumps the generation in one
// transaction, so it reaches the vnode like any desired state. A failure keeps whatever
// certificate is served, counts, records the error and backs off.
import { randomUUID } from "node:crypto";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import {
  AcmeCertificate,
  AcmeVnodePolicy,
  MailCertificate,
  MailDnsPolicy,
  MailTls,
  VMailDomain,
  Vnode,
  mailHostnameOf,
} from "../db/entities/index.ts";
import { parseDomain } from "../../common/validation/index.ts";
import { bumpGeneration, lockVnode } from "../db/generation.ts";
import { findVnode } from "../fleet/vnode-service.ts";
import type { DnsProvider } from "../dns/dns-provider.ts";
import { acmeClientFor } from "./acme-account.ts";
import { obtainCertificate } from "./acme-order.ts";
import type { IssuedCertificate } from "./acme-order.ts";
import { renewalAt, retryAt } from "./acme-schedule.ts";
import { AcmeRetryLater } from "./acme-http.ts";
import { certificateId, fetchRenewalInfo, renewalInWindow } from "./acme-renewal-info.ts";
import type { Logger } from "../../common/log.ts";
import type { RetryPolicy } from "./acme-schedule.ts";
import type { ChallengeSolver, ChallengeType } from "./challenge-solver.ts";
import { createDns01Solver } from "./dns01-solver.ts";
import { createHttp01Solver, type PushState } from "./http01-solver.ts";

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

/** The names a hosted domain publishes for mail clients and MTA-STS (mail-records.ts). */
export function domainCertificateNames(domain: string, options: { mtaSts: boolean; mailName: boolean }): string[] {
  return [
    ...(options.mailName ? [`mail.${domain}`] : []),
    ...(options.mtaSts ? [`mta-sts.${domain}`] : []),
    `autoconfig.${domain}`,
    `autodiscover.${domain}`,
  ];
}

export const domainPurpose = (domain: string): string => `domain:${domain}`;

function checkChallenge(challenge: ChallengeType): void {
  if (challenge !== "dns-01" && challenge !== "http-01")
    throw new NetservaError("invalid_argument", "challenge: must be dns-01 or http-01", { field: "challenge" });
}

async function upsertOrder(
  tx: SqlEntityManager,
  vnodeId: number,
  purpose: string,
  names: string[],
  input: AcmeRequestInput,
): Promise<AcmeCertificate> {
  const fields = {
    serverUrl: input.serverUrl,
    serverCaPem: input.serverCaPem,
    email: input.email,
    challenge: input.challenge,
    names,
    nextAttemptAt: new Date(),
    failures: 0,
    lastError: null,
  };
  const row = await tx.findOne(AcmeCertificate, { vnodeId, purpose });
  if (row) {
    Object.assign(row, fields);
    await tx.flush();
    return row;
  }
  const created = tx.create(AcmeCertificate, { vnodeId, purpose, state: "pending", ...fields });
  await tx.flush();
  return created;
}

/** The vnode's ACME server is the one last asked for; `allDomains`/`mailName` only when given. */
async function upsertPolicy(
  tx: SqlEntityManager,
  vnodeId: number,
  input: AcmeRequestInput,
  domains: { allDomains: boolean; mailName: boolean } | undefined,
): Promise<void> {
  const fields = {
    serverUrl: input.serverUrl,
    serverCaPem: input.serverCaPem,
    email: input.email,
    challenge: input.challenge,
    ...(domains ?? {}),
  };
  const row = await tx.findOne(AcmeVnodePolicy, { vnodeId });
  if (row) Object.assign(row, fields);
  else tx.create(AcmeVnodePolicy, { vnodeId, allDomains: false, mailName: false, ...fields });
  await tx.flush();
}

export async function requestMailHostAcme(em: SqlEntityManager, input: AcmeRequestInput): Promise<AcmeCertificate> {
  checkChallenge(input.challenge);
  return em.transactional(async (tx) => {
    const vnode = await findVnode(tx, input.vnode);
    await upsertPolicy(tx, vnode.id, input, undefined);
    return upsertOrder(tx, vnode.id, MAIL_HOST, [mailHostnameOf(vnode)], input);
  });
}

/** `--all-domains`: from now on every active hosted domain gets its certificate (the sweep adds
 *  domains added later, and drops the orders of domains removed); the ones hosted now are ordered
 *  at once. Resolves with their orders. */
export async function requestAllDomainsAcme(
  em: SqlEntityManager,
  input: AcmeRequestInput & { mailName: boolean },
): Promise<Array<{ id: number; domain: string }>> {
  checkChallenge(input.challenge);
  return em.transactional(async (tx) => {
    const vnode = await findVnode(tx, input.vnode);
    await upsertPolicy(tx, vnode.id, input, { allDomains: true, mailName: input.mailName });
    const ids: Array<{ id: number; domain: string }> = [];
    for (const hosted of await tx.find(
      VMailDomain,
      { vnodeId: vnode.id, active: true },
      { orderBy: { domain: "asc" } },
    )) {
      const policy = await tx.findOne(MailDnsPolicy, { domainId: hosted.id });
      const names = domainCertificateNames(hosted.domain, {
        mtaSts: policy?.mtaSts ?? false,
        mailName: input.mailName,
      });
      const order = await upsertOrder(tx, vnode.id, domainPurpose(hosted.domain), names, input);
      ids.push({ id: order.id, domain: hosted.domain });
    }
    return ids;
  });
}

/** A hosted domain's certificate: autoconfig and autodiscover, mta-sts when the domain asked for
 *  MTA-STS, mail.<domain> with `mailName` (served by SNI on the mail ports). */
export async function requestDomainAcme(
  em: SqlEntityManager,
  input: AcmeRequestInput & { domain: string; mailName: boolean },
): Promise<AcmeCertificate> {
  checkChallenge(input.challenge);
  const domain = parseDomain(input.domain, "domain").ascii;
  return em.transactional(async (tx) => {
    const vnode = await findVnode(tx, input.vnode);
    const hosted = await tx.findOne(VMailDomain, { domain, vnodeId: vnode.id });
    if (!hosted) throw new NetservaError("not_found", `domain ${domain} is not hosted on vnode ${vnode.name}`);
    const policy = await tx.findOne(MailDnsPolicy, { domainId: hosted.id });
    const names = domainCertificateNames(domain, { mtaSts: policy?.mtaSts ?? false, mailName: input.mailName });
    await upsertPolicy(tx, vnode.id, input, undefined);
    return upsertOrder(tx, vnode.id, domainPurpose(domain), names, input);
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
  /** Where a renewal-information failure is noted (it never fails an issued certificate). */
  log?: Logger;
  /** Pushes the vnode's state (HTTP-01 challenges reach the agent this way). */
  push?: PushState;
}

interface RenewalSchedule {
  nextAttemptAt: Date;
  certificateId: string | null;
  renewalWindowStart: Date | null;
  renewalWindowEnd: Date | null;
  renewalInfoCheckAt: Date | null;
}

/** When to renew a certificate just issued: inside the server's ARI window when it offers one,
 *  else at 2/3 of the lifetime. Asking for the window may fail: the certificate is kept, renewal
 *  falls back to 2/3, and the sweep asks again later. */
export async function renewalSchedule(
  server: { serverUrl: string; serverCaPem: string | null },
  issued: IssuedCertificate,
  log: Logger | undefined,
): Promise<RenewalSchedule> {
  const fallback = renewalAt(issued.notBefore, issued.notAfter);
  const certificateId = certificateIdOf(issued.chainPem);
  const none = { certificateId: certificateId ?? null, renewalWindowStart: null, renewalWindowEnd: null };
  if (certificateId === undefined) return { ...none, nextAttemptAt: fallback, renewalInfoCheckAt: null };
  try {
    const info = await fetchRenewalInfo(server, certificateId);
    if (info === undefined) return { ...none, nextAttemptAt: fallback, renewalInfoCheckAt: null };
    // A window already over for a certificate just issued is the server's mistake, not a reason to
    // renew at every sweep: renewal stays at 2/3 until the window is asked for again.
    return {
      certificateId,
      nextAttemptAt: info.end.getTime() > Date.now() ? renewalInWindow(info) : fallback,
      renewalWindowStart: info.start,
      renewalWindowEnd: info.end,
      renewalInfoCheckAt: info.checkAgainAt,
    };
  } catch (error) {
    log?.warn("ACME renewal information unavailable; renewing at 2/3 of the lifetime", {
      error: NetservaError.from(error).message,
    });
    return { ...none, nextAttemptAt: fallback, renewalInfoCheckAt: new Date(Date.now() + 3600_000) };
  }
}

function certificateIdOf(chainPem: string): string | undefined {
  try {
    return certificateId(chainPem);
  } catch {
    return undefined;
  }
}

export type AcmeRunResult =
  | { outcome: "issued"; generation: number; certificate: IssuedCertificate; vnode: string; names: string[] }
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
  // The mail host name follows the vnode's setting; a domain's names are what was asked for.
  const names = row.purpose === MAIL_HOST ? [mailHostnameOf(vnode)] : row.names;
  try {
    const client = await acmeClientFor(em, {
      serverUrl: row.serverUrl,
      serverCaPem: row.serverCaPem ?? null,
      email: row.email ?? null,
    });
    const solver =
      options.solver ??
      (row.challenge === "http-01"
        ? createHttp01Solver({ em, vnodeId: vnode.id, vnode: vnode.name, push: options.push })
        : createDns01Solver(options.dns));
    const issued = await obtainCertificate(client, names, solver, {
      ...(row.certificateId ? { replaces: row.certificateId } : {}),
    });
    const schedule = await renewalSchedule(
      { serverUrl: row.serverUrl, serverCaPem: row.serverCaPem ?? null },
      issued,
      options.log,
    );
    const generation = await em.fork().transactional(async (tx) => {
      await lockVnode(tx, vnode.id);
      if (row.purpose === MAIL_HOST) {
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
      } else {
        // The per-name seam: this order's certificate replaces any ACME one for the same names.
        const previous = await tx.find(MailCertificate, { vnodeId: vnode.id, issuer: "acme" });
        for (const p of previous) if (p.names.some((n) => names.includes(n))) tx.remove(p);
        tx.create(MailCertificate, {
          vnodeId: vnode.id,
          names,
          issuer: "acme",
          certificateChainPem: issued.chainPem,
          privateKeyPem: issued.keyPem,
          notAfter: issued.notAfter,
        });
      }
      await tx.nativeUpdate(
        AcmeCertificate,
        { id },
        {
          names,
          state: "valid",
          issuer: issued.issuer,
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
          ...schedule,
          failures: 0,
          lastError: null,
          retryAfter: null,
          lastAttemptAt: new Date(),
          claimedBy: null,
          claimedUntil: null,
        },
      );
      await tx.flush();
      return bumpGeneration(tx, vnode.id);
    });
    return { outcome: "issued", generation, certificate: issued, vnode: vnode.name, names };
  } catch (reason) {
    const error = NetservaError.from(reason, "unavailable");
    const failures = row.failures + 1;
    const now = new Date();
    // The server said until when to wait: never earlier than that, never earlier than our backoff.
    const backoff = retryAt(now, failures, options.retry);
    const retryAfter = reason instanceof AcmeRetryLater ? reason.retryAfter : undefined;
    const nextAttemptAt = retryAfter && retryAfter > backoff ? retryAfter : backoff;
    const rateLimited = reason instanceof AcmeRetryLater && reason.rateLimited;
    await em.fork().nativeUpdate(
      AcmeCertificate,
      { id },
      {
        names,
        state: rateLimited ? "rate-limited" : "failing",
        retryAfter: retryAfter ?? null,
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
