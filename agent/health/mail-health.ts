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
  type WebHealth,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { VnodePaths } from "../paths.ts";
import { cached, withTimeout } from "./bounded.ts";
import { newestSignatures } from "./clamav-signatures.ts";
import { dovecotUsers } from "./dovecot-users.ts";
import { vnodeFilesystems, type RoleFsUsage } from "./filesystem.ts";
import { createUsageScanner, type MailboxUsageRow, type UsageScanOptions } from "./mailbox-usage.ts";
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
  usageScan?: UsageScanOptions;
  /** The agent's web listeners (web-host.ts); absent when it has none. */
  web?: () => WebHealth;
}

export interface MailHealthSource {
  health(): Promise<MailHealth>;
  mailboxes(): Promise<MailboxUsageRow[]>;
}

const toFilesystem = (f: RoleFsUsage) =>
  create(FilesystemUsageSchema, {
    path: f.path,
    sizeBytes: BigInt(f.sizeBytes),
    usedBytes: BigInt(f.usedBytes),
    availableBytes: BigInt(f.availableBytes),
    roles: f.roles,
    rolePaths: f.rolePaths,
    inodes: BigInt(f.inodes),
    freeInodes: BigInt(f.freeInodes),
  });

const toMailbox = (m: MailboxUsageRow): MailboxUsage =>
  create(MailboxUsageSchema, {
    address: m.address,
    usedBytes: BigInt(m.usedBytes),
    limitBytes: BigInt(m.limitBytes),
    messages: BigInt(m.messages),
  });

export function createMailHealth(o: MailHealthOptions): MailHealthSource {
  const timeout = o.timeoutMs ?? 2000;
  const usageInterval = o.usageIntervalMs ?? 30_000;
  // Paced (see mailbox-usage.ts): at 100,000 maildirs a pass takes seconds of work, spread out
  // so the vnode's mail never waits for it; the last complete pass is served meanwhile.
  const scanner = createUsageScanner(o.paths.lookupDb, o.usageScan);
  let usage: { at: number; rows: MailboxUsageRow[] } | undefined;
  const scan = (): Promise<MailboxUsageRow[]> =>
    scanner.scan().then((rows) => {
      usage = { at: Date.now(), rows };
      return rows;
    });
  const mailboxes = async (): Promise<MailboxUsageRow[]> => {
    if (usage) {
      if (Date.now() - usage.at > usageInterval) void scan().catch(() => undefined);
      return usage.rows;
    }
    // No pass finished yet (a new agent): wait a little, then say how far the first one got.
    const first = scan();
    first.catch(() => undefined);
    const rows = await Promise.race([
      first,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), timeout / 2)),
    ]);
    if (rows) return rows;
    throw new Error(`first scan still running (${scanner.progress()?.done ?? 0} mailboxes so far)`);
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
      probe("postfix queue", () =>
        postfixQueueSizes({ queueDir: o.paths.postfixQueueDir, configDir: o.paths.postfixDir, timeoutMs: timeout }),
      ),
      existsSync(o.paths.dovecotConf)
        ? probe("dovecot", () => dovecotUsers({ dovecotConf: o.paths.dovecotConf, timeoutMs: timeout }))
        : Promise.resolve(undefined),
      hasRspamd
        ? probe("rspamd", () => rspamdStats({ socketPath: o.rspamdControllerSocket, timeoutMs: timeout }))
        : Promise.resolve(undefined),
      probe("clamav", () => newestSignatures(o.clamavDbDir)),
      probe("filesystem", () => vnodeFilesystems(o.paths)),
      existsSync(o.paths.lookupDb) ? probe("mailbox usage", mailboxes) : Promise.resolve([] as MailboxUsageRow[]),
      probe("mail tls", () => mailTlsNotAfter(o.paths.tlsCert)),
    ]);
    const q = summarizeQuota(rows ?? []);
    const mailFs = fs?.find((f) => f.roles.includes("mail"));
    return create(MailHealthSchema, {
      collectedUnixMs: BigInt(Date.now()),
      ...(queue
        ? { queue: create(PostfixQueueSchema, { ...queue.counts, oldestDeferredSeconds: queue.oldestDeferredSeconds }) }
        : {}),
      dovecotUsers: dovecot?.users ?? -1,
      dovecotConnections: dovecot?.connections ?? -1,
      rspamd: create(
        RspamdCountersSchema,
        rspamd
          ? {
              available: true,
              scanned: BigInt(rspamd.scanned),
              ham: BigInt(rspamd.ham),
              spam: BigInt(rspamd.spam),
              rejected: BigInt(rspamd.rejected),
              greylisted: BigInt(rspamd.greylisted),
              addHeader: BigInt(rspamd.addHeader),
            }
          : { available: false },
      ),
      clamavSignaturesUnixMs: BigInt(clamav ?? 0),
      ...(mailFs
        ? {
            filesystem: create(FilesystemUsageSchema, {
              path: mailFs.path,
              sizeBytes: BigInt(mailFs.sizeBytes),
              usedBytes: BigInt(mailFs.usedBytes),
              availableBytes: BigInt(mailFs.availableBytes),
            }),
          }
        : {}),
      filesystems: (fs ?? []).map(toFilesystem),
      quota: create(QuotaSummarySchema, {
        mailboxes: q.mailboxes,
        over80: q.over80,
        over90: q.over90,
        over100: q.over100,
        usedBytes: BigInt(q.usedBytes),
        top: q.top.map(toMailbox),
        domains: q.domains.map((d) =>
          create(DomainUsageSchema, {
            domain: d.domain,
            mailboxes: d.mailboxes,
            usedBytes: BigInt(d.usedBytes),
            maxRatio: d.maxRatio,
          }),
        ),
      }),
      mailTlsNotAfterUnixMs: BigInt(tls ?? 0),
      errors,
      ...(o.web ? { web: o.web() } : {}),
    });
  };

  return { health: cached(o.cacheMs ?? 3000, collect), mailboxes };
}

export { toMailbox };
