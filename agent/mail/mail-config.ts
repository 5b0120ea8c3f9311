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
import { createFilterConfig, filterWants, type FilterOptions } from "./filter-config.ts";
import { greets } from "./probes.ts";
import { renderTlsFiles } from "./tls-files.ts";
import type { SystemUser } from "./vmail-user.ts";

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

  function render(state: DesiredState): { tls: FileSet; daemons: FileSet } {
    const s = state.settings;
    const mailHostname = checkDomain(s?.mailHostname ?? "", "settings.mail_hostname");
    const listenAddresses = listenOf(state);
    for (const a of listenAddresses)
      if (!/^[0-9a-f.:]+$/i.test(a)) throw invalid("settings.listen_addresses", `${a} is not an IP address`);
    const postfix = renderPostfix({
      paths: p,
      mailHostname,
      listenAddresses,
      rspamdEnabled: filterWants(state).rspamd,
      milterAddress: o.milterAddress ?? filters.milterAddress,
      submitUsers: ["root", "postfix", o.vmail.name],
      ...(o.extraMainCf ? { extraMainCf: o.extraMainCf } : {}),
      installParams: o.postfixInstallParams,
    });
    const dovecot = renderDovecot({
      paths: p,
      mailHostname,
      listenAddresses,
      vmailUid: o.vmail.uid,
      vmailGid: o.vmail.gid,
      ...(o.authPenalty === undefined ? {} : { authPenalty: o.authPenalty }),
      ...(o.extraDovecotConf ? { extraConf: o.extraDovecotConf } : {}),
    });
    return { tls: renderTlsFiles(p, state.tls), daemons: new Map([...filters.render(state), ...postfix, ...dovecot]) };
  }

  const readText = (path: string): string | undefined => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  };

  const running = async (name: string): Promise<boolean> => (await o.sc.status(name)).running;

  /** Reload the daemons that read the changed files (only if running: start() picks up the rest). */
  async function reloadFor(changed: readonly string[], restartPostfix = false): Promise<string[]> {
    const tlsChanged = changed.some((f) => f.startsWith(`${p.tlsDir}/`));
    if (changed.includes(p.dovecotSieveBefore))
      await runChecked("sievec", ["-c", p.dovecotConf, p.dovecotSieveBefore], { wrap: o.wrap ?? [] });
    const reloaded: string[] = [];
    if ((tlsChanged || changed.some((f) => f.startsWith(`${p.postfixDir}/`))) && (await running("postfix"))) {
      if (restartPostfix && changed.includes(p.postfixMainCf)) await o.sc.restart("postfix");
      else await o.sc.reload("postfix");
      reloaded.push("postfix");
    }
    if ((tlsChanged || changed.some((f) => f.startsWith(`${p.dovecotDir}/`))) && (await running("dovecot"))) {
      await o.sc.reload("dovecot");
      reloaded.push("dovecot");
    }
    return reloaded;
  }

  /** Up means greeting on the first listen address: SMTP 220 on 25, IMAP "* OK" on 143. */
  async function verify(state: DesiredState, names: readonly string[]): Promise<void> {
    const host = listenOf(state)[0] ?? "127.0.0.1";
    if (names.includes("postfix"))
      await waitUntil("postfix to greet on port 25", 10_000, () => greets(host, 25, "220"), 50);
    if (names.includes("dovecot"))
      await waitUntil("dovecot to greet on port 143", 10_000, () => greets(host, 143, "* OK"), 50);
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
    const restartPostfix = postfixNeedsRestart(readText(p.postfixMainCf), daemons.get(p.postfixMainCf)?.content);
    let reloaded: string[] = [];
    // applyConfigFiles calls reload() a second time only to roll back.
    const f = filters.reloader(want);
    let forwardDone = false;
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
        if (forwardDone) await f.undo();
        else {
          forwardDone = true;
          await f.forward(changed);
        }
        reloaded = await reloadFor(changed, restartPostfix);
      },
      verify: async (changed) => {
        await filters.verify(want, changed);
        await verify(state, reloaded);
      },
      validate: [
        ...filters.validators(state),
        ...postfixValidators({ paths: p, wrap: o.wrap ?? [] }),
        ...dovecotValidators(p, o.wrap ?? []),
      ],
    });
    return { result, files };
  }

  return { apply, render, verify, settle, filters };
}
