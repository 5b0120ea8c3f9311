// The filter half of the mail host: when the desired state enables Rspamd (and ClamAV), render
// local.d/, the DKIM key files and clamd.conf as part of the same file set as Postfix and Dovecot,
// check them with `rspamadm configtest` and `clamconf`, and start/reload/restart the daemons
// through sc() before Postfix is pointed at the milter.
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError, invalid } from "../../common/errors.ts";
import type { Validator } from "../apply/apply-config-files.ts";
import type { FileSet } from "../apply/file-spec.ts";
import { createClamdDaemon, validateClamdConfig } from "../clamav/daemon.ts";
import { createClamavPaths, type ClamavPaths } from "../clamav/paths.ts";
import { renderClamdConf } from "../clamav/render.ts";
import { renderEicarNdb } from "../clamav/signatures.ts";
import type { VnodePaths } from "../paths.ts";
import { createRspamdDaemon } from "../rspamd/daemon.ts";
import { renderDkimKeyFiles } from "../rspamd/dkim-keys.ts";
import { createRspamdPaths, type RspamdPaths } from "../rspamd/paths.ts";
import { renderRspamdLocalD } from "../rspamd/render.ts";
import { validateRspamdConfig } from "../rspamd/validate.ts";
import { filterService } from "../sc/filter-services.ts";
import type { ServiceControl } from "../sc/service-control.ts";
import { socketAnswers, waitUntil } from "../process.ts";
import { lookupUser } from "./vmail-user.ts";

/** How long a started or reloaded Rspamd may take to accept milter connections. */
const MILTER_READY_MS = 30_000;

export interface FilterOptions {
  /** Turn off Rspamd modules that need DNS or the network (tests, vnodes without a resolver). */
  readonly disableNetworkModules?: boolean;
  /** Resolvers as "ip:port" (default: the system's resolv.conf). */
  readonly dnsServers?: readonly string[];
  readonly dnsTimeoutMs?: number;
  /**
   * Hyperscan cache directory. The one path allowed outside --root: a fresh cache costs ~10 s of
   * compilation per instance, so tests (and hosts with many private roots) share one.
   */
  readonly hsCacheDir?: string;
  readonly normalWorkers?: number;
  readonly rejectScore?: number;
  readonly addHeaderScore?: number;
  /** false: no greylist action (it needs Redis, which the agent does not configure). */
  readonly greylist?: false;
  /** Tests only: manage an EICAR-only signature DB in clamd's database dir (no freshclam here). */
  readonly clamavTestSignatures?: boolean;
  /** Extra or replacement local.d files by name (operator additions; tests inject broken ones). */
  readonly extraLocalD?: ReadonlyArray<readonly [string, string]>;
  /** Users the daemons run as (Debian: _rspamd, clamav). */
  readonly rspamdUser?: string;
  readonly clamavUser?: string;
}

export type FilterName = "rspamd" | "clamd";

export interface FilterWants {
  readonly rspamd: boolean;
  readonly clamd: boolean;
}

/** ClamAV is only reachable through Rspamd's antivirus module: no Rspamd, no clamd. */
export function filterWants(state: DesiredState): FilterWants {
  const rspamd = state.settings?.rspamdEnabled ?? false;
  return { rspamd, clamd: rspamd && (state.settings?.clamavEnabled ?? false) };
}

const LOCAL_D_NAME = /^[a-z0-9_][a-z0-9_.-]*\.(conf|inc)$/;

export function createFilterConfig(o: {
  paths: VnodePaths;
  sc: ServiceControl;
  wrap?: readonly string[];
  filter?: FilterOptions;
}) {
  const f = o.filter ?? {};
  const rspamdPaths: RspamdPaths = createRspamdPaths(o.paths.root);
  const clamavPaths: ClamavPaths = createClamavPaths(o.paths.root);
  const rspamdUser = f.rspamdUser ?? "_rspamd";
  const wrap = o.wrap ?? [];
  const rspamd = createRspamdDaemon({
    paths: rspamdPaths,
    user: rspamdUser,
    wrap,
    ...(f.hsCacheDir ? { extraDirs: [f.hsCacheDir] } : {}),
  });
  const clamd = createClamdDaemon({ paths: clamavPaths, wrap, ...(f.clamavUser ? { user: f.clamavUser } : {}) });
  o.sc.registry.register(filterService("rspamd", o.paths, rspamd));
  o.sc.registry.register(filterService("clamd", o.paths, clamd));

  /** Postfix's milter address: the proxy worker's unix socket under the root. */
  const milterAddress = `unix:${rspamdPaths.milterSocket}`;

  function render(state: DesiredState): FileSet {
    const want = filterWants(state);
    const files: FileSet = new Map();
    if (!want.rspamd) return files;
    const owner = lookupUser(rspamdUser);
    if (!owner)
      throw new NetservaError(
        "failed_precondition",
        `rspamd is enabled but the ${rspamdUser} user is missing: install rspamd`,
      );
    const settings = state.settings;
    if (!settings) throw invalid("settings", "required");
    const localD = renderRspamdLocalD({
      paths: rspamdPaths,
      settings: { ...settings, clamavEnabled: want.clamd },
      dkimKeys: state.dkimKeys,
      milterListen: rspamdPaths.milterSocket,
      disableNetworkModules: f.disableNetworkModules ?? false,
      ...(want.clamd ? { clamavSocket: clamavPaths.socket } : {}),
      ...(f.dnsServers ? { dnsServers: f.dnsServers } : {}),
      ...(f.dnsTimeoutMs === undefined ? {} : { dnsTimeoutMs: f.dnsTimeoutMs }),
      ...(f.hsCacheDir ? { hsCacheDir: f.hsCacheDir } : {}),
      ...(f.normalWorkers === undefined ? {} : { normalWorkers: f.normalWorkers }),
      ...(f.rejectScore === undefined ? {} : { rejectScore: f.rejectScore }),
      ...(f.addHeaderScore === undefined ? {} : { addHeaderScore: f.addHeaderScore }),
      ...(f.greylist === false ? { greylist: false as const } : {}),
    });
    for (const [name, content] of f.extraLocalD ?? []) {
      if (!LOCAL_D_NAME.test(name)) throw invalid("extraLocalD", `${JSON.stringify(name)} is not a local.d file name`);
      localD.set(name, content);
    }
    for (const [name, content] of localD) files.set(`${rspamdPaths.localDir}/${name}`, { content, mode: 0o644 });
    // Keys: 0600, readable only by the user Rspamd's workers run as; never logged.
    for (const k of renderDkimKeyFiles(rspamdPaths, state.dkimKeys, { user: rspamdUser, group: rspamdUser })) {
      files.set(k.path, { content: k.content, mode: k.mode, uid: owner.uid, gid: owner.gid });
    }
    if (want.clamd) {
      files.set(clamavPaths.clamdConf, {
        content: renderClamdConf({ paths: clamavPaths, ...(f.clamavUser ? { user: f.clamavUser } : {}) }),
        mode: 0o644,
      });
      if (f.clamavTestSignatures)
        files.set(`${clamavPaths.dbDir}/eicar.ndb`, { content: renderEicarNdb(), mode: 0o644 });
    }
    return files;
  }

  function validators(state: DesiredState): Validator[] {
    const want = filterWants(state);
    const out: Validator[] = [];
    if (want.rspamd) {
      out.push({
        name: "rspamadm configtest",
        async check(staged) {
          const r = await validateRspamdConfig({ paths: rspamdPaths, confDir: staged(rspamdPaths.confDir) });
          if (!r.ok) throw new Error(`rspamadm configtest failed: ${r.output || "no reason given"}`);
        },
      });
    }
    if (want.clamd) {
      out.push({
        name: "clamconf",
        async check(staged) {
          const r = await validateClamdConfig(staged(clamavPaths.confDir));
          if (!r.ok) throw new Error(`clamconf failed: ${r.output || "no reason given"}`);
        },
      });
    }
    return out;
  }

  const touches = (changed: readonly string[], name: FilterName): boolean =>
    name === "rspamd"
      ? changed.some((p) => p.startsWith(`${rspamdPaths.confDir}/`) || p.startsWith(`${rspamdPaths.dkimDir}/`))
      : changed.some((p) => p.startsWith(`${clamavPaths.confDir}/`) || p.startsWith(`${clamavPaths.dbDir}/`));

  const running = async (name: FilterName): Promise<boolean> => (await o.sc.status(name)).running;

  /**
   * One apply's reload of the filters: forward() brings them onto the changed files, clamd before
   * rspamd (rspamd's antivirus module needs it) and both before Postfix is reloaded onto the
   * milter; undo() is the rollback path: stop what forward() started, put the rest back onto the
   * restored files. Progress is recorded before each step, so a half-done forward() is undone too.
   */
  function reloader(want: FilterWants) {
    const started: FilterName[] = [];
    const cycled: FilterName[] = [];
    const restart = (name: FilterName): Promise<void> => o.sc.restart(name);
    return {
      async forward(changed: readonly string[]): Promise<void> {
        for (const name of ["clamd", "rspamd"] as const) {
          if (!want[name]) continue;
          if (!(await running(name))) {
            // Wanted and not running: started before Postfix is pointed at the milter even when
            // its files did not change (they may be on disk already: a rolled-back enable leaves
            // them, so its retry changed only main.cf and Postfix met a missing milter socket).
            started.push(name);
            // Turned on by the state: it should come back at boot too.
            await o.sc.enable(name);
            await o.sc.start(name);
          } else if (touches(changed, name)) {
            cycled.push(name);
            // clamd has no config reload (its reload re-reads signatures only).
            if (name === "clamd" && changed.includes(clamavPaths.clamdConf)) await restart(name);
            else await o.sc.reload(name);
          }
        }
      },
      /** The filters forward() started (verify() waits for them as for changed ones). */
      started: (): readonly FilterName[] => [...started],
      async undo(): Promise<void> {
        for (const name of started) await o.sc.stop(name).catch(() => undefined);
        for (const name of cycled) {
          if (!(await running(name))) await o.sc.start(name).catch(() => undefined);
          else if (name === "clamd") await restart(name).catch(() => undefined);
          else await o.sc.reload(name).catch(() => undefined);
        }
      },
    };
  }

  /** After a change to its files, up means the milter socket Postfix talks to accepts connections. */
  async function verify(
    want: FilterWants,
    changed: readonly string[],
    started: readonly FilterName[] = [],
  ): Promise<void> {
    if (!want.rspamd || !(touches(changed, "rspamd") || started.includes("rspamd"))) return;
    // Polled: under an init system start returns before Rspamd has loaded its config (Debian's
    // rspamd.service is Type=simple), and a reload leaves the old workers for a moment.
    try {
      await waitUntil("rspamd's milter socket", MILTER_READY_MS, () => socketAnswers(rspamdPaths.milterSocket), 200);
    } catch {
      throw new NetservaError(
        "unavailable",
        `rspamd's milter socket ${rspamdPaths.milterSocket} does not accept connections`,
      );
    }
  }

  /** Start whatever the state wants and is not running (a daemon that died, or start()). */
  async function ensureRunning(want: FilterWants): Promise<void> {
    for (const name of ["clamd", "rspamd"] as const) {
      if (!want[name] || (await running(name))) continue;
      await o.sc.enable(name);
      await o.sc.start(name);
    }
  }

  /** Managed filter files listed in a manifest: which filters the last applied state enabled. */
  function wantsFromFiles(files: readonly string[]): FilterWants {
    return {
      rspamd: files.some((p) => p.startsWith(`${rspamdPaths.localDir}/`)),
      clamd: files.includes(clamavPaths.clamdConf),
    };
  }

  return {
    rspamdPaths,
    clamavPaths,
    milterAddress,
    render,
    validators,
    reloader,
    verify,
    ensureRunning,
    wantsFromFiles,
    running,
    touches,
  };
}

export type FilterConfig = ReturnType<typeof createFilterConfig>;
