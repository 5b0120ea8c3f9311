// The mail part of the health report, gathered from cheap sources, each under its own deadline:
// a probe that fails or times out leaves its field at the "unknown" value and names itself in
// `errors`, so one slow daemon never holds up the health stream. The whole result is cached for
// a few seconds (health streams and Prometheus scrapes share it); mailbox usage is rescanned in
// the background at most every `usageIntervalMs` and the last scan is served meanwhile.
import { existsSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import {
  DomainUsageSchema,
  FilesystemUsageSchema,
  MailboxUsageSchema,
  MailHealthSchema,
  PostfixQueueSchema,
  QuotaSummarySchema,
  RspamdCountersSchema,
  type MailHealth,
  type MailboxUsage,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { VnodePaths } from "../paths.ts";
import { cached, withTimeout } from "./bounded.ts";
import { newestSignatures } from "./clamav-signatures.ts";
import { dovecotUsers } from "./dovecot-users.ts";
import { filesystemUsage } from "./filesystem.ts";
import { scanMailboxUsage, type MailboxUsageRow } from "./mailbox-usage.ts";
import { mailTlsNotAfter } from "./mail-tls-expiry.ts";
import { postfixQueueSizes } from "./postfix-queue.ts";
import { summarizeQuota } from "./quota-summary.ts";
import { rspamdStats } from "./rspamd-stats.ts";

export interface MailHealthOptions {
  paths: VnodePaths;
  clamavDbDir: string;
  rspamdControllerSocket: string;
  timeoutMs?: number;
  cacheMs?: number;
  usageIntervalMs?: number;
}

export interface MailHealthSource {
  health(): Promise<MailHealth>;
  mailboxes(): Promise<MailboxUsageRow[]>;
}

const toMailbox = (m: MailboxUsageRow): MailboxUsage =>
  create(MailboxUsageSchema, { address: m.address, usedBytes: BigInt(m.usedBytes), limitBytes: BigInt(m.limitBytes), messages: BigInt(m.messages) });

export function createMailHealth(o: MailHealthOptions): MailHealthSource {
  const timeout = o.timeoutMs ?? 2000;
  const usageInterval = o.usageIntervalMs ?? 30_000;
  let usage: { at: number; rows: MailboxUsageRow[]; tookMs: number } | undefined;
  let scanning: Promise<MailboxUsageRow[]> | undefined;
  const scan = (): Promise<MailboxUsageRow[]> => {
    const started = Date.now();
    scanning ??= scanMailboxUsage(o.paths.lookupDb)
      .then((rows) => {
        usage = { at: Date.now(), rows, tookMs: Date.now() - started };
        return rows;
      })
      .finally(() => {
        scanning = undefined;
      });
    return scanning;
  };
  const mailboxes = async (): Promise<MailboxUsageRow[]> => {
    if (!usage) return scan();
    // At 100,000 maildirs a scan takes seconds of CPU the vnode's mail also needs: never spend
    // more than ~5 % of the time on it, however short the configured interval.
    if (Date.now() - usage.at > Math.max(usageInterval, usage.tookMs * 20)) void scan().catch(() => undefined);
    return usage.rows;
  };

  const collect = async (): Promise<MailHealth> => {
    const errors: string[] = [];
    const probe = async <T>(name: string, fn: () => Promise<T>): Promise<T | undefined> => {
      try {
        return await withTimeout(fn(), timeout, name);
      } catch (error) {
        errors.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
        return undefined;
      }
    };
    const hasRspamd = existsSync(o.rspamdControllerSocket);
    const [queue, dovecot, rspamd, clamav, fs, rows, tls] = await Promise.all([
      probe("postfix queue", () => postfixQueueSizes({ queueDir: o.paths.postfixQueueDir, configDir: o.paths.postfixDir, timeoutMs: timeout })),
      existsSync(o.paths.dovecotConf) ? probe("dovecot", () => dovecotUsers({ dovecotConf: o.paths.dovecotConf, timeoutMs: timeout })) : Promise.resolve(undefined),
      hasRspamd ? probe("rspamd", () => rspamdStats({ socketPath: o.rspamdControllerSocket, timeoutMs: timeout })) : Promise.resolve(undefined),
      probe("clamav", () => newestSignatures(o.clamavDbDir)),
      probe("filesystem", () => filesystemUsage(existsSync(o.paths.mailRoot) ? o.paths.mailRoot : o.paths.root)),
      existsSync(o.paths.lookupDb) ? probe("mailbox usage", mailboxes) : Promise.resolve([] as MailboxUsageRow[]),
      probe("mail tls", () => mailTlsNotAfter(o.paths.tlsCert)),
    ]);
    const q = summarizeQuota(rows ?? []);
    return create(MailHealthSchema, {
      collectedUnixMs: BigInt(Date.now()),
      ...(queue
        ? { queue: create(PostfixQueueSchema, { ...queue.counts, oldestDeferredSeconds: queue.oldestDeferredSeconds }) }
        : {}),
      dovecotUsers: dovecot?.users ?? -1,
      dovecotConnections: dovecot?.connections ?? -1,
      rspamd: create(RspamdCountersSchema, rspamd
        ? { available: true, scanned: BigInt(rspamd.scanned), ham: BigInt(rspamd.ham), spam: BigInt(rspamd.spam), rejected: BigInt(rspamd.rejected), greylisted: BigInt(rspamd.greylisted), addHeader: BigInt(rspamd.addHeader) }
        : { available: false }),
      clamavSignaturesUnixMs: BigInt(clamav ?? 0),
      ...(fs ? { filesystem: create(FilesystemUsageSchema, { path: fs.path, sizeBytes: BigInt(fs.sizeBytes), usedBytes: BigInt(fs.usedBytes), availableBytes: BigInt(fs.availableBytes) }) } : {}),
      quota: create(QuotaSummarySchema, {
        mailboxes: q.mailboxes,
        over80: q.over80,
        over90: q.over90,
        over100: q.over100,
        usedBytes: BigInt(q.usedBytes),
        top: q.top.map(toMailbox),
        domains: q.domains.map((d) => create(DomainUsageSchema, { domain: d.domain, mailboxes: d.mailboxes, usedBytes: BigInt(d.usedBytes), maxRatio: d.maxRatio })),
      }),
      mailTlsNotAfterUnixMs: BigInt(tls ?? 0),
      errors,
    });
  };

  return { health: cached(o.cacheMs ?? 3000, collect), mailboxes };
}

export { toMailbox };
