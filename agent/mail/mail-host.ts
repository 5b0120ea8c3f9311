// The vnode's mail: one object that takes desired state or incremental changes and makes Postfix,
// Dovecot and (when the state enables them) Rspamd and clamd serve it. Lookup rows go to SQLite
// (live at once, no reload); config files go through apply (checked, atomic, rolled back on
// failure); a domain change reloads Postfix, because an smtpd that cached "no such domain" keeps
// answering 554 for a while otherwise. Filters the state enables are kept running (milter
// failures tempfail mail); filters it no longer enables are stopped once Postfix has let go.

import { rmSync } from "node:fs";
import type { DesiredState, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { recoverPendingApply } from "../apply/backup.ts";
import { inKillScope } from "../apply/kill-points.ts";
import { openLookupStore, type LookupEntry } from "../lookup/lookup-store.ts";
import { checkChanges, checkStateInTurns } from "../lookup/rows.ts";
import { createVnodePaths, type VnodePaths } from "../paths.ts";
import { installPostfixMetaFiles, readPostfixInstallParams, readPostfixMetaFiles } from "../postfix/meta-files.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import type { ServiceStatus } from "../sc/service-definition.ts";
import { filterWants, type FilterName, type FilterWants } from "./filter-config.ts";
import { createMailConfig, type MailConfigOptions } from "./mail-config.ts";
import { createMaildirs, type HealItem } from "./maildirs.ts";
import type { Logger } from "../../common/log.ts";
import { moveLegacyLookupDb } from "./legacy-lookup.ts";
import { driftedFiles, manifestSpec, readManifest } from "./manifest.ts";
import { ensureRuntimeDirs } from "./runtime-dirs.ts";
import { ensureVmailUser, lookupGroupId } from "./vmail-user.ts";
import type { ServedWeb } from "../web/web-host.ts";
import { removeStaleSniFiles } from "./sni-files.ts";
import { MAX_WARMED, warmNewMailboxes } from "./mailbox-warmup.ts";

export interface MailHostOptions extends Omit<MailConfigOptions, "paths" | "vmail" | "postfixInstallParams"> {
  readonly root: string;
  readonly sc: ServiceControl;
  readonly vmailUser?: string;
  /** Where the host's postfix-files / dynamicmaps.cf are copied from (private roots). */
  readonly postfixMetaDir?: string;
  readonly log?: Logger;
  /** What the vnode serves over HTTPS (agent/web): prepared with each whole state, committed with it. */
  readonly web?: ServedWeb;
}

/** Share of one core the background maildir heal may take. */
const HEAL_DUTY_CYCLE = 0.25;

export interface ApplyOutcome {
  readonly changed: boolean;
  readonly diff: string[];
  readonly digest: string;
  /** Of an incremental apply: how long the lookup rows' transaction took (commit and fsync), ms. */
  readonly lookupMs?: number;
}

export interface MailHost {
  readonly paths: VnodePaths;
  applyState(state: DesiredState, opts?: { dryRun?: boolean }): Promise<ApplyOutcome>;
  applyChanges(changes: readonly StateChange[], opts?: { dryRun?: boolean }): Promise<ApplyOutcome>;
  start(): Promise<void>;
  /** Start the filters the last applied config wants if they are not running (agent start-up). */
  ensureFilters(): Promise<void>;
  stop(): Promise<void>;
  /** Drifted files and the lookup DB; `full` recomputes the DB digest even if nobody wrote. */
  drift(opts?: { full?: boolean }): string[];
  status(): Promise<{ services: ServiceStatus[]; digest: string; generation: string }>;
  /** Resolves once the background maildir heal of the last whole state is over (tests). */
  healDone(): Promise<void>;
  close(): void;
}

export async function createMailHost(o: MailHostOptions): Promise<MailHost> {
  const paths = createVnodePaths(o.root);
  const vmail = await ensureVmailUser(o.vmailUser ?? "vmail");
  ensureRuntimeDirs(paths);
  const postfixGid = lookupGroupId("postfix");
  moveLegacyLookupDb(paths);
  const lookup = openLookupStore({
    path: paths.lookupDb,
    mailUid: vmail.uid,
    mailGid: vmail.gid,
    mailHome: paths.mailHome,
    ...(postfixGid === undefined ? {} : { readerGid: postfixGid }),
  });
  const maildirs = createMaildirs(paths, vmail);
  installPostfixMetaFiles(paths, readPostfixMetaFiles(o.postfixMetaDir));
  const config = createMailConfig({ ...o, paths, vmail, postfixInstallParams: await readPostfixInstallParams() });
  // An apply a crash interrupted is finished first: forward if its rows committed, else back.
  const recovery = recoverPendingApply(paths.backupDir, (id) => lookup.commitMark() === id);
  rmSync(paths.stagingDir, { recursive: true, force: true });
  if (recovery) {
    const settled = await config.settle(recovery).catch((error: unknown) => {
      o.log?.warn("reload after recovery failed", { error: error instanceof Error ? error.message : String(error) });
      return [];
    });
    o.log?.warn("interrupted apply finished at start-up", {
      direction: recovery.direction,
      files: recovery.files.length,
      reloaded: settled.join(",") || "none",
    });
  }

  const filters = config.filters;
  const appliedWants = (): FilterWants => filters.wantsFromFiles(Object.keys(readManifest(paths.manifest).files));
  const filterNames = (w: FilterWants): FilterName[] => (["clamd", "rspamd"] as const).filter((n) => w[n]);

  const reloadPostfixIfRunning = async (): Promise<void> => {
    if ((await o.sc.status("postfix")).running) await inKillScope("reload", () => o.sc.reload("postfix"));
    lookup.reloadDone();
  };
  // A domain change committed just before a crash never got its reload (see domainTouched).
  if (lookup.reloadPending()) {
    await reloadPostfixIfRunning().catch((error: unknown) =>
      o.log?.warn("postfix reload for domain rows failed", {
        error: error instanceof Error ? error.message : String(error),
      }),
    );
    o.log?.warn("postfix reloaded at start-up for domain rows committed before a crash");
  }
  const domainTouched = (entries: readonly LookupEntry[]): boolean => entries.some((e) => e.kind === "domain");

  // One background heal at a time: a newer whole state replaces the one under way.
  let healing: { controller: AbortController; done: Promise<void> } | undefined;
  const healInBackground = (items: HealItem[], generation: bigint): void => {
    healing?.controller.abort();
    const controller = new AbortController();
    const started = performance.now();
    const wanted = (m: HealItem): boolean => lookup.hasMailbox(`${m.local}@${m.domain}`);
    const done = maildirs
      .heal(items, { wanted, signal: controller.signal, dutyCycle: HEAL_DUTY_CYCLE })
      .then(
        ({ healed, leftToDovecot }) => {
          // Always one line per whole state: it also says the agent's background work is over.
          if (!controller.signal.aborted)
            o.log?.info("maildirs healed", {
              generation: String(generation),
              mailboxes: healed,
              left_to_dovecot: leftToDovecot,
              seconds: Math.round((performance.now() - started) / 1000),
            });
        },
        (error: unknown) =>
          o.log?.warn("maildir heal stopped", { error: error instanceof Error ? error.message : String(error) }),
      )
      .finally(() => {
        if (healing?.controller === controller) healing = undefined;
      });
    healing = { controller, done };
  };

  return {
    paths,
    async applyState(state, opts = {}) {
      const dryRun = opts.dryRun === true;
      // Refuse bad rows and bad config before changing anything: every row is checked here (its
      // names, and that its domain is hosted), config is staged and checked by apply; only then
      // are the rows written, in one pass. The row work runs in turns of the event loop: done at
      // once, 100,000 rows held the loop past the gRPC keepalive and the push was dropped.
      const checked = await checkStateInTurns(state); // every row checked, every address parsed: once
      lookup.checkDomains(checked);
      // A dry run's diff comes from a rolled-back pass; a real apply takes its diff from the commit.
      let rows = dryRun ? await lookup.replaceAllInTurns(checked, { dryRun: true }) : { diff: [], entries: [] };
      const before = appliedWants();
      // Served domains and certificates checked (and a new listener bound) before anything changes.
      const web = await o.web?.prepare(state);
      // The rows commit inside the apply, marked with its journal's id: config and rows are one
      // unit, also across a crash (apply/backup.ts). The manifest is written with them.
      // A takeover (nothing of ours applied yet: another tool's live configuration, e.g. an
      // adopted NetServa vnode) commits its rows BEFORE the files swap: the running daemons do not
      // read our lookup DB, and the reloaded Postfix must find every domain at once (between the
      // reload and a later commit it answered 554 "Relay access denied": mail refused, not
      // deferred). Should the apply then fail, the rows wait unread for the next one.
      const takeover = !dryRun && Object.keys(readManifest(paths.manifest).files).length === 0;
      const early = takeover ? await lookup.replaceAllInTurns(checked) : undefined;
      const { result, files } = await config
        .apply(state, dryRun, {
          commit: async (mark) => {
            const committed = await lookup.replaceAllInTurns(checked, mark === undefined ? {} : { mark });
            rows = early ?? committed;
          },
          bookkeeping: (files) => new Map([[paths.manifest, manifestSpec(state.generation, files)]]),
        })
        .catch(async (error: unknown) => {
          await web?.abort();
          throw error;
        });
      if (dryRun) await web?.abort();
      else {
        await web?.commit();
        // Keys of SNI certificates no longer in the state go once the daemons run without them.
        removeStaleSniFiles(paths, new Set(files.keys()));
      }
      if (!dryRun) {
        // Full state heals storage too. Mailboxes missing from the state keep their maildir (a
        // wrong state must not wipe mail). Now: domain directories and every Sieve script
        // (delivery must filter at once). In the background: the folders missing in existing
        // homes; a mailbox without a home is left to Dovecot (first delivery or login).
        const items = checked.mailboxes.map((m): HealItem => ({
          domain: m.domain,
          local: m.local,
          sieve: m.sieve,
          own: m.owner,
        }));
        for (const domain of new Set(items.filter((m) => !m.own).map((m) => m.domain))) maildirs.ensureDomain(domain);
        const sieved = items.filter((m) => m.sieve !== "");
        if (sieved.length > 0) await maildirs.heal(sieved);
        healInBackground(items, state.generation);
        // After the rows' commit, even if the apply reloaded Postfix for its config before it.
        if (domainTouched(rows.entries)) await reloadPostfixIfRunning();
        // Postfix is on the new config now: start filters it needs, stop ones it dropped.
        const want = filterWants(state);
        await filters.ensureRunning(want);
        for (const name of filterNames(before)) if (!want[name]) await o.sc.stop(name);
      }
      const diff = [...rows.diff, ...result.diff];
      return { changed: diff.length > 0, diff, digest: lookup.digest() };
    },

    async applyChanges(changes, opts = {}) {
      const dryRun = opts.dryRun === true;
      const checked = checkChanges(changes); // every row checked, every address parsed: once
      const started = performance.now();
      const rows = lookup.applyChanges(checked, { dryRun });
      const lookupMs = performance.now() - started;
      const diff = [...rows.diff];
      if (!dryRun) {
        // keep_maildir on delete_mailbox keeps that maildir; on delete_domain, all of the domain's.
        const keep = new Set(
          checked.flatMap((c) =>
            c.kind === "deleteMailbox" && c.keepMaildir
              ? [c.address.ascii]
              : c.kind === "deleteDomain" && c.keepMaildir
                ? [c.domain]
                : [],
          ),
        );
        const upserts = new Map(
          checked.flatMap((c) => (c.kind === "upsertMailbox" ? [[c.row.user, c.row] as const] : [])),
        );
        for (const e of rows.entries) {
          const a = e.kind === "mailbox" ? e.mailbox : undefined;
          if (!a) continue;
          const m = upserts.get(e.key);
          // Cheap stat calls; also heals a maildir that went missing since the mailbox was added.
          const own = a.adopted ? { home: a.home, uid: a.uid, gid: a.gid } : undefined;
          if (e.op !== "remove") maildirs.ensure(a.domain, a.local, own);
          if (m && (e.op === "add" || e.fields?.includes("sieve"))) maildirs.setSieve(a.domain, a.local, m.sieve, own);
          if (e.op === "remove") {
            if (keep.has(e.key) || keep.has(a.domain)) diff.push(`  maildir of ${e.key} kept`);
            else if (maildirs.remove(a.domain, a.local, own)) diff.push(`- maildir ${a.home}`);
          }
        }
        if (domainTouched(rows.entries)) await reloadPostfixIfRunning();
        // A few new mailboxes: Dovecot's first look at them now, not in the first SMTP session.
        const added = rows.entries.filter((e) => e.kind === "mailbox" && e.op === "add").map((e) => e.key);
        if (added.length > 0 && added.length <= MAX_WARMED)
          setImmediate(
            () =>
              void warmNewMailboxes(paths.dovecotQuotaStatusSocket, added, (address, error) =>
                o.log?.debug("new mailbox not warmed", { address, error: error.message }),
              ),
          );
        // A domain added or removed is served (autoconfig, autodiscover) or not at once.
        const domains = checked.flatMap((c) =>
          c.kind === "upsertDomain"
            ? [{ domain: c.row.domain, served: c.row.active === 1 }]
            : c.kind === "deleteDomain"
              ? [{ domain: c.domain, served: false }]
              : [],
        );
        if (domains.length > 0)
          await o.web?.domainsChanged(domains).catch((error: unknown) =>
            o.log?.warn("served domains not updated", {
              error: error instanceof Error ? error.message : String(error),
            }),
          );
      }
      return { changed: diff.length > 0, diff, digest: lookup.digest(), lookupMs };
    },

    async start() {
      if (Object.keys(readManifest(paths.manifest).files).length === 0) {
        throw new NetservaError("failed_precondition", "no config applied yet: applyState first");
      }
      // Filters first: with milter_default_action = tempfail, Postfix without them defers mail.
      await filters.ensureRunning(appliedWants());
      await o.sc.start("dovecot");
      await o.sc.start("postfix");
    },

    ensureFilters: () => filters.ensureRunning(appliedWants()),

    async stop() {
      await o.sc.stop("postfix");
      await o.sc.stop("dovecot");
      // This root's filters stop with the mail host; asking first keeps a host without them
      // (e.g. systemd with no rspamd unit installed) from failing on a unit it never had.
      for (const name of ["rspamd", "clamd"] as const) {
        if ((await o.sc.status(name).catch(() => ({ running: false }))).running) await o.sc.stop(name);
      }
    },

    drift(opts = {}) {
      const out = driftedFiles(readManifest(paths.manifest));
      // O(1) unless another connection wrote the DB: the health report calls this every few s.
      if (!lookup.digestMatches({ full: opts.full === true })) out.push(paths.lookupDb);
      return out;
    },

    async status() {
      const names = ["postfix", "dovecot", ...filterNames(appliedWants()).reverse()];
      const services = await Promise.all(names.map((n) => o.sc.status(n)));
      return { services, digest: lookup.digest(), generation: readManifest(paths.manifest).generation };
    },

    async healDone() {
      while (healing) await healing.done;
    },

    close: () => {
      healing?.controller.abort();
      lookup.close();
    },
  };
}
