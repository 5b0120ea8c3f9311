// The config half of the mail host: render TLS, Postfix, Dovecot and (when enabled) Rspamd/ClamAV
// files from the desired state, and push them through apply with the right checkers, reloads and
// verification. Filters are one transaction with Postfix: they are checked together, and the
// filters are up on the new config before Postfix is reloaded onto the milter.
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { invalid } from "../../common/errors.ts";
import { applyConfigFiles, type ApplyConfigResult } from "../apply/apply-config-files.ts";
import type { FileSet } from "../apply/file-spec.ts";
import type { Recovery } from "../apply/backup.ts";
import { dovecotValidators } from "../dovecot/checks.ts";
import { renderDovecot } from "../dovecot/render.ts";
import { checkDomain } from "../lookup/names.ts";
import type { VnodePaths } from "../paths.ts";
import { readFileSync } from "node:fs";
import { postfixValidators } from "../postfix/checks.ts";
import { postfixNeedsRestart } from "../postfix/restart-params.ts";
import { renderPostfix } from "../postfix/render.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import { runChecked, waitUntil } from "../process.ts";
import { NetservaError } from "../../common/errors.ts";
import {
  awaitDaemonWords,
  daemonWords,
  markDaemonLogs,
  quoteWords,
  type LogMarks,
  type MailDaemon,
} from "./daemon-log.ts";
import { createFilterConfig, filterWants, type FilterOptions } from "./filter-config.ts";
import { verifyListeners } from "./verify-listeners.ts";
import { checkNewListeners, postfixListenAddresses } from "./bind-check.ts";
import { renderTlsFiles } from "./tls-files.ts";
import { renderSniFiles } from "./sni-files.ts";
import type { SystemUser } from "./vmail-user.ts";
import { authHandshake, waitNewAuth } from "./auth-ready.ts";
import { passingSaslOutage, postfixThrottleSeconds } from "./sasl-outage.ts";
import type { Logger } from "../../common/log.ts";

export interface MailConfigOptions {
  readonly paths: VnodePaths;
  readonly sc: ServiceControl;
  readonly vmail: SystemUser;
  /** Listen addresses overriding settings.listen_addresses (e.g. the namespace's address). */
  readonly listen?: readonly string[];
  readonly wrap?: readonly string[];
  /** Postfix milter address; default the Rspamd proxy worker's unix socket under the root. */
  readonly milterAddress?: string;
  /** Rspamd/ClamAV knobs (used when settings.rspamd_enabled / clamav_enabled). */
  readonly filter?: FilterOptions;
  readonly authPenalty?: boolean;
  readonly extraMainCf?: ReadonlyArray<readonly [string, string]>;
  readonly extraDovecotConf?: readonly string[];
  readonly postfixInstallParams: ReadonlyArray<readonly [string, string]>;
  readonly log?: Logger;
}

export function createMailConfig(o: MailConfigOptions) {
  const p = o.paths;
  const listenOf = (state: DesiredState): string[] => [...(o.listen ?? state.settings?.listenAddresses ?? [])];
  const filters = createFilterConfig({
    paths: p,
    sc: o.sc,
    ...(o.wrap ? { wrap: o.wrap } : {}),
    ...(o.filter ? { filter: o.filter } : {}),
  });

  /** `daemonsOnly`: the daemon files alone (adoption's preview, before any certificate exists). */
  function render(state: DesiredState, opts: { daemonsOnly?: boolean } = {}): { tls: FileSet; daemons: FileSet } {
    const s = state.settings;
    const mailHostname = checkDomain(s?.mailHostname ?? "", "settings.mail_hostname");
    const listenAddresses = listenOf(state);
    for (const a of listenAddresses)
      if (!/^[0-9a-f.:]+$/i.test(a)) throw invalid("settings.listen_addresses", `${a} is not an IP address`);
    const sni = renderSniFiles(p, state);
    const postfix = renderPostfix({
      paths: p,
      mailHostname,
      listenAddresses,
      rspamdEnabled: filterWants(state).rspamd,
      milterAddress: o.milterAddress ?? filters.milterAddress,
      sni: sni.entries,
      submitUsers: ["root", "postfix", o.vmail.name],
      ...(o.extraMainCf ? { extraMainCf: o.extraMainCf } : {}),
      installParams: o.postfixInstallParams,
    });
    const dovecot = renderDovecot({
      paths: p,
      mailHostname,
      listenAddresses,
      ...lowestOwner(state, o.vmail),
      sni: sni.entries,
      ...(o.authPenalty === undefined ? {} : { authPenalty: o.authPenalty }),
      ...(o.extraDovecotConf ? { extraConf: o.extraDovecotConf } : {}),
    });
    return {
      tls: opts.daemonsOnly ? new Map() : new Map([...renderTlsFiles(p, state.tls), ...sni.files]),
      daemons: new Map([...filters.render(state), ...postfix, ...dovecot]),
    };
  }

  const readText = (path: string): string | undefined => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  };

  const running = async (name: string): Promise<boolean> => (await o.sc.status(name)).running;

  const DAEMONS = ["postfix", "dovecot"] as const;
  // Dovecot first: a fresh smtpd (every one after Postfix's reload, and the listener probes')
  // asks Dovecot's auth for its mechanisms at once, and dies if that finds Dovecot mid-reload.
  const RELOAD_ORDER = ["dovecot", "postfix"] as const;

  /** Reload Dovecot and wait until a new auth process answers on the socket Postfix asks. */
  async function reloadDovecot(): Promise<void> {
    const before = await authHandshake(p.dovecotAuthSocket);
    const mark = markDaemonLogs(p);
    await o.sc.reload("dovecot");
    // A reload Dovecot refused (it logs why) brings no new process: verification reports it.
    const giveUp = (): boolean => daemonWords(mark, "dovecot").length > 0;
    if (!(await waitNewAuth(p.dovecotAuthSocket, before?.spid, { giveUp })))
      o.log?.warn("dovecot auth not answering from a new process after the reload; postfix goes on", {
        socket: p.dovecotAuthSocket,
      });
  }

  /**
   * Reload the daemons that read the changed files (only if running: start() picks up the rest).
   * `bringBack` (a rollback): those of them that are down are started, e.g. a Postfix whose
   * restart onto the new listeners failed to bind and left it stopped.
   */
  async function reloadFor(
    changed: readonly string[],
    restartPostfix = false,
    bringBack: ReadonlySet<MailDaemon> = new Set(),
  ): Promise<MailDaemon[]> {
    const tlsChanged = changed.some((f) => f.startsWith(`${p.tlsDir}/`));
    if (changed.includes(p.dovecotSieveBefore))
      await runChecked("sievec", ["-c", p.dovecotConf, p.dovecotSieveBefore], { wrap: o.wrap ?? [] });
    const dirOf: Record<MailDaemon, string> = { postfix: p.postfixDir, dovecot: p.dovecotDir };
    const reloaded: MailDaemon[] = [];
    for (const name of RELOAD_ORDER) {
      if (!tlsChanged && !changed.some((f) => f.startsWith(`${dirOf[name]}/`))) continue;
      if (await running(name)) {
        if (name === "postfix" && restartPostfix && changed.includes(p.postfixMainCf)) await o.sc.restart(name);
        else if (name === "dovecot") await reloadDovecot();
        else await o.sc.reload(name);
      } else if (bringBack.has(name)) await o.sc.start(name);
      else continue;
      reloaded.push(name);
    }
    return reloaded;
  }

  /** Runs `act`; if it throws, the error also carries what the daemons logged since `marks`. */
  async function withDaemonWords<T>(marks: LogMarks, act: () => Promise<T>): Promise<T> {
    try {
      return await act();
    } catch (err) {
      const words = await Promise.all(DAEMONS.map(async (d) => [d, await awaitDaemonWords(marks, d)] as const));
      const e = NetservaError.from(err, "unavailable");
      throw new NetservaError(e.code, `${e.message}${quoteWords(words)}`, { cause: err });
    }
  }

  /** Back onto the restored files: every daemon that ran before the apply runs again. */
  async function rollBack(changed: readonly string[], restartPostfix: boolean, before: ReadonlySet<MailDaemon>) {
    const marks = markDaemonLogs(p);
    await withDaemonWords(marks, async () => {
      await reloadFor(changed, restartPostfix, before);
      // A loaded host may take a while to answer (Dovecot's status asks LMTP): poll, don't peek.
      const down: MailDaemon[] = [];
      for (const name of before)
        await waitUntil(`${name} running`, 10_000, () => running(name), 200).catch(() => down.push(name));
      if (down.length > 0) throw new NetservaError("unavailable", `${down.join(" and ")} not running`);
    });
  }

  /**
   * After start-up recovery (apply/backup.ts) put the files back or forward: the daemons that
   * read them may run either version, so each one running is reloaded onto what is on disk now
   * (Postfix restarted when its listeners differ between the two).
   */
  async function settle(recovery: Recovery): Promise<string[]> {
    const changed = recovery.files.map((f) => f.path);
    const mainCf = recovery.files.find((f) => f.path === p.postfixMainCf);
    const restartPostfix = mainCf !== undefined && postfixNeedsRestart(mainCf.previous, mainCf.next);
    const settled: string[] = [];
    for (const name of ["clamd", "rspamd"] as const) {
      if (!filters.touches(changed, name) || !(await filters.running(name))) continue;
      await o.sc.restart(name);
      settled.push(name);
    }
    return [...settled, ...(await reloadFor(changed, restartPostfix))];
  }

  interface ApplyHooks {
    /** The commit point (lookup rows with the journal's id as mark): see applyConfigFiles. */
    readonly commit?: (mark: string | undefined) => void | Promise<void>;
    /** Written with the commit (the manifest). */
    readonly bookkeeping?: (files: FileSet) => FileSet;
  }

  async function apply(
    state: DesiredState,
    dryRun: boolean,
    hooks: ApplyHooks = {},
  ): Promise<{ result: ApplyConfigResult; files: FileSet }> {
    const { tls, daemons } = render(state);
    const want = filterWants(state);
    // Listener changes need a restart both ways (forward, and back on rollback).
    const liveMainCf = readText(p.postfixMainCf);
    const restartPostfix = postfixNeedsRestart(liveMainCf, daemons.get(p.postfixMainCf)?.content);
    // A new address whose port someone else holds would fail only at that restart (and cost a
    // second one back, at every retry): refused before anything is written.
    if (restartPostfix && (await running("postfix")))
      await checkNewListeners(postfixListenAddresses(liveMainCf), listenOf(state));
    let reloaded: MailDaemon[] = [];
    // applyConfigFiles calls reload() a second time only to roll back.
    const f = filters.reloader(want);
    let forwardDone = false;
    let runningBefore = new Set<MailDaemon>();
    let marks = markDaemonLogs(p);
    // One unit: the TLS files are staged, checked, swapped and rolled back with the daemon
    // configs that name them, so a refused config never leaves a new key behind it (and a
    // failed reload puts the old pair back with the old config). `doveconf -n` does not open
    // the ssl_cert/ssl_key files, so the staged dovecot.conf naming the live paths checks fine
    // even on the first apply, before any TLS file exists; renderTlsFiles checked the pair.
    const files: FileSet = new Map([...tls, ...daemons]);
    const result = await applyConfigFiles({
      stagingDir: p.stagingDir,
      backupDir: p.backupDir,
      dryRun,
      files,
      ...(hooks.commit ? { commit: hooks.commit } : {}),
      ...(hooks.bookkeeping ? { bookkeeping: hooks.bookkeeping(files) } : {}),
      reload: async (changed) => {
        if (forwardDone) {
          await f.undo();
          await rollBack(changed, restartPostfix, runningBefore);
          return;
        }
        forwardDone = true;
        runningBefore = new Set((await Promise.all(DAEMONS.map(async (d) => ((await running(d)) ? [d] : [])))).flat());
        marks = markDaemonLogs(p);
        await f.forward(changed);
        reloaded = await withDaemonWords(marks, () => reloadFor(changed, restartPostfix));
      },
      verify: async (changed) => {
        await filters.verify(want, changed, f.started());
        // Every listener of the new config, on every address, with the new certificate: a
        // daemon can accept a reload and still fail to bind or to load its key (daemon-log.ts).
        const addresses = listenOf(state);
        // A throttle Postfix put on 465/587 after an smtpd met Dovecot mid-reload ends by itself:
        // verification waits it out (sasl-outage.ts).
        const throttleMs = postfixThrottleSeconds(daemons.get(p.postfixMainCf)?.content) * 1000;
        let told = false;
        await verifyListeners({
          daemons: reloaded,
          addresses,
          certificatePath: p.tlsCert,
          marks,
          deadlineMs: Math.max(10_000, throttleMs + 10_000),
          passing: async (daemon, words) => {
            if (daemon !== "postfix" || !(await passingSaslOutage(words, p.dovecotAuthSocket))) return false;
            if (!told)
              o.log?.warn("postfix throttled a submission service after Dovecot's auth reload; waiting it out", {
                words: words.join(" | "),
              });
            told = true;
            return true;
          },
        });
      },
      validate: [
        ...filters.validators(state),
        ...postfixValidators({ paths: p, wrap: o.wrap ?? [] }),
        ...dovecotValidators(p, o.wrap ?? []),
      ],
    });
    return { result, files };
  }

  return { apply, render, settle, filters };
}

/**
 * Dovecot's first_valid_uid/gid: the vmail user's, or lower when an adopted mailbox is owned by
 * a lower uid/gid (NetServa's per-domain users), so those mailboxes log in and take mail.
 */
function lowestOwner(state: DesiredState, vmail: { uid: number; gid: number }): { vmailUid: number; vmailGid: number } {
  let uid = vmail.uid;
  let gid = vmail.gid;
  for (const m of state.mailboxes) {
    if (m.uid > 0 && m.uid < uid) uid = m.uid;
    if (m.gid > 0 && m.gid < gid) gid = m.gid;
  }
  return { vmailUid: uid, vmailGid: gid };
}
