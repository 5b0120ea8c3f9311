// The served part of the vnode (MTA-STS, autoconfig, autodiscover) across desired states and
// restarts. An apply first prepares it (checks the served domains and certificates, binds a new
// listener address) so a bad state is refused before anything changes; the mail host commits it
// after its own apply succeeded, or aborts it. What was committed is kept in a state file (0600:
// it holds keys), so a restarted agent serves again at once, with or without its controller.
import { join } from "node:path";
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import {
  DesiredStateSchema,
  ServedDomainSchema,
  type DesiredState,
} from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError, invalid } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import { parseHostPort } from "../../common/validation/host-port.ts";
import type { VnodePaths } from "../paths.ts";
import { readStateFile, writeStateFile } from "../server/state-file.ts";
import { certMapOf, createContextChooser, nameMatches } from "./cert-map.ts";
import { siteOf } from "./served-site.ts";
import { writeSiteDirectory } from "./web-directory.ts";
import { startWebServer, type WebContent, type WebLimits, type WebListener } from "./web-server.ts";
import { startChallengeServer, type ChallengeListener } from "./challenge-server.ts";
import { createWebStats } from "./web-stats.ts";
import { WebHealthSchema, type WebHealth } from "../../common/gen/netserva/mail/v1/agent_pb.ts";

export interface PendingWeb {
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface ServedWeb {
  prepare(state: DesiredState): Promise<PendingWeb>;
  /** Incremental domain changes (a domain added, disabled, removed): the served list follows at
   *  once, as the controller's next whole state would have it (a new domain has no MTA-STS yet). */
  domainsChanged(changes: ReadonlyArray<{ domain: string; served: boolean }>): Promise<void>;
  /** Serve what was committed before the agent (re)started; a problem is logged, not thrown. */
  restore(): Promise<void>;
  /** The listener, when one is configured and bound. */
  listener(): WebListener | undefined;
  /** For the health report: each configured listener (bound or why not), request counts, TLS
   *  handshake failures. A listener that failed to bind is tried again, at most every 30 s. */
  health(): WebHealth;
  close(): Promise<void>;
}

/** Only what the web part needs, so the state file stays small. */
function servedPart(state: DesiredState): DesiredState {
  return create(DesiredStateSchema, {
    generation: state.generation,
    settings: {
      mailHostname: state.settings?.mailHostname ?? "",
      webListen: state.settings?.webListen ?? "",
      webDirectory: state.settings?.webDirectory ?? "",
      httpListen: state.settings?.httpListen ?? "",
    },
    ...(state.tls ? { tls: state.tls } : {}),
    certificates: state.certificates,
    served: state.served,
    acmeChallenges: state.acmeChallenges,
  });
}

function contentOf(state: DesiredState): WebContent | undefined {
  const site = siteOf(state);
  const map = certMapOf(state);
  if (!map.fallback) return undefined;
  return { site, choose: createContextChooser(map), fallback: map.fallback };
}

function listenOf(state: DesiredState): { host: string; port: number } | undefined {
  const text = state.settings?.webListen ?? "";
  if (text === "") return undefined;
  const hp = parseHostPort(text, "settings.web_listen");
  if (hp.kind === "name") throw invalid("settings.web_listen", "must be an IP address and port");
  return { host: hp.host, port: hp.port };
}

const RETRY_MS = 30_000;

/** The short reason a bind failed (EADDRINUSE, EADDRNOTAVAIL, EACCES…), with Node's words. */
function bindError(error: unknown): string {
  const e = error as { code?: string; message?: string };
  return (e.code ? `${e.code}: ` : "") + (e.message ?? String(error)).slice(0, 200);
}

function httpListenOf(state: DesiredState): { host: string; port: number } | undefined {
  const text = state.settings?.httpListen ?? "";
  if (text === "") return undefined;
  const hp = parseHostPort(text, "settings.http_listen");
  if (hp.kind === "name") throw invalid("settings.http_listen", "must be an IP address and port");
  return { host: hp.host, port: hp.port };
}

function challengesOf(state: DesiredState): Map<string, string> {
  const map = new Map<string, string>();
  for (const c of state.acmeChallenges) {
    if (!/^[A-Za-z0-9_-]{1,256}$/.test(c.token) || !c.keyAuthorization.startsWith(`${c.token}.`))
      throw invalid("acme_challenges", `token '${c.token.slice(0, 40)}' or its key authorization is malformed`);
    map.set(c.token, c.keyAuthorization);
  }
  return map;
}

function directoryOf(state: DesiredState): string | undefined {
  const dir = state.settings?.webDirectory ?? "";
  if (dir === "") return undefined;
  if (!dir.startsWith("/") || dir.split("/").includes("..") || /[^\x20-\x7e]/.test(dir))
    throw invalid("settings.web_directory", "must be an absolute path without '..'");
  return dir;
}

export function createServedWeb(o: { paths: VnodePaths; log?: Logger; limits?: Partial<WebLimits> }): ServedWeb {
  const file = join(o.paths.stateDir, "web-served.json");
  let listener: WebListener | undefined;
  let http: ChallengeListener | undefined;
  const stats = createWebStats();
  /** Why a configured listener is not listening ("" = it is). */
  let problems = { https: "", http: "" };
  let lastRetry = 0;
  let retrying = false;
  /** The web part of the last committed state. */
  let current: DesiredState | undefined;

  async function prepare(state: DesiredState): Promise<PendingWeb> {
    const listen = listenOf(state);
    const directory = directoryOf(state);
    const content = contentOf(state); // checks every served domain and certificate
    if (listen && !content)
      throw new NetservaError(
        "failed_precondition",
        "settings.web_listen: the vnode has no mail certificate to serve with",
        {
          field: "settings.web_listen",
        },
      );
    const httpListen = httpListenOf(state);
    const challenges = challengesOf(state);
    const sameHttp = httpListen && http && http.host === httpListen.host && http.port === httpListen.port;
    let freshHttp: ChallengeListener | undefined;
    let httpError = "";
    if (httpListen && !sameHttp) {
      try {
        freshHttp = await startChallengeServer({
          ...httpListen,
          challenges,
          stats,
          ...(o.log ? { log: o.log } : {}),
          ...(o.limits ? { limits: o.limits } : {}),
        });
      } catch (error) {
        httpError = bindError(error);
      }
    }
    const same = listen && listener && listener.host === listen.host && listener.port === listen.port;
    let fresh: WebListener | undefined;
    let httpsError = "";
    if (listen && content && !same) {
      try {
        fresh = await startWebServer({
          ...listen,
          content,
          stats,
          ...(o.log ? { log: o.log } : {}),
          ...(o.limits ? { limits: o.limits } : {}),
        });
      } catch (error) {
        httpsError = bindError(error);
      }
    }
    return {
      async commit() {
        if (directory) writeSiteDirectory(directory, siteOf(state));
        // A listener that could not bind is reported (health, metrics), not a refused state: the
        // mail part applies, and the next state (or the retry in health()) binds again.
        if (fresh || !listen || httpsError) {
          const old = listener;
          listener = fresh;
          await old?.close();
        } else if (content) listener?.update(content);
        if (freshHttp || !httpListen || httpError) {
          const old = http;
          http = freshHttp;
          await old?.close();
        } else http?.update(challenges);
        problems = { https: httpsError, http: httpError };
        if (httpsError || httpError)
          o.log?.warn("web listener not listening", {
            ...(httpsError ? { https: `${state.settings?.webListen ?? ""}: ${httpsError}` } : {}),
            ...(httpError ? { http: `${state.settings?.httpListen ?? ""}: ${httpError}` } : {}),
          });
        current = servedPart(state);
        writeStateFile(file, JSON.parse(toJsonString(DesiredStateSchema, current)) as unknown);
      },
      async abort() {
        await fresh?.close();
        await freshHttp?.close();
      },
    };
  }

  return {
    prepare,
    async domainsChanged(changes) {
      if (!current || changes.length === 0) return;
      const next = servedPart(current);
      const map = certMapOf(next);
      for (const c of changes) {
        const at = next.served.findIndex((s) => s.domain === c.domain);
        if (!c.served) {
          if (at >= 0) next.served.splice(at, 1);
          continue;
        }
        if (at >= 0) continue;
        const own = `mail.${c.domain}`;
        const mailHost = map.named.some((p) => p.names.some((n) => nameMatches(n, own)))
          ? own
          : (next.settings?.mailHostname ?? "");
        next.served.push(create(ServedDomainSchema, { domain: c.domain, mtaStsPolicy: "", mailHost }));
      }
      next.served.sort((a, b) => (a.domain < b.domain ? -1 : a.domain > b.domain ? 1 : 0));
      await (await prepare(next)).commit();
    },
    async restore() {
      const read = readStateFile<DesiredState | undefined>(file, undefined, (data) => {
        try {
          return fromJsonString(DesiredStateSchema, JSON.stringify(data));
        } catch {
          return undefined;
        }
      });
      if (read.problem) o.log?.warn("served web state unusable", { problem: read.problem });
      if (!read.value) return;
      try {
        await (await prepare(read.value)).commit();
      } catch (error) {
        o.log?.warn("served web not restored", { error: error instanceof Error ? error.message : String(error) });
      }
    },
    listener: () => listener,
    health() {
      const settings = current?.settings;
      const listeners = [];
      if (settings?.webListen)
        listeners.push({ kind: "https", address: settings.webListen, listening: !!listener, error: problems.https });
      if (settings?.httpListen)
        listeners.push({ kind: "http-01", address: settings.httpListen, listening: !!http, error: problems.http });
      if ((problems.https || problems.http) && current && !retrying && Date.now() - lastRetry > RETRY_MS) {
        lastRetry = Date.now();
        retrying = true;
        const again = current;
        void prepare(again)
          .then((pending) => pending.commit())
          .catch(() => undefined)
          .finally(() => (retrying = false));
      }
      return create(WebHealthSchema, {
        listeners,
        requests: stats.requests().map((r) => ({ ...r, count: BigInt(r.count) })),
        tlsHandshakeFailures: BigInt(stats.tlsFailures()),
      });
    },
    async close() {
      const old = listener;
      listener = undefined;
      await old?.close();
      const oldHttp = http;
      http = undefined;
      await oldHttp?.close();
    },
  };
}
