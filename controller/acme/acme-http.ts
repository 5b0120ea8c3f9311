// How acme-client talks HTTP, set once per process: its shared axios instance gets (1) per-server
// trust for ACME servers with their own CA (`--server-ca`: Pebble, a private ACME server), chosen
// by the request's origin so two servers never share a trust store, (2) no retries inside a request
// (our own schedule retries with backoff and is visible; acme-client's would sleep silently, up to
// a Retry-After of hours), and (3) network failures turned into an error that says which server
// could not be reached (acme-client's own path loses the cause).
import { Agent } from "node:https";
import acme from "acme-client";
import { NetservaError } from "../../common/errors.ts";

const agents = new Map<string, Agent>();
let installed = false;

interface RequestConfig {
  url?: string;
  baseURL?: string;
  httpsAgent?: unknown;
}

function originOf(config: RequestConfig): string | undefined {
  try {
    return new URL(config.url ?? "", config.baseURL).origin;
  } catch {
    return undefined;
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings;
  if (settings) settings.retryMaxAttempts = 0;
  acme.axios.defaults.timeout = 30_000;
  acme.axios.interceptors.request.use((config) => {
    const origin = originOf(config);
    const agent = origin === undefined ? undefined : agents.get(origin);
    if (agent) config.httpsAgent = agent;
    return config;
  });
  // First in line, before acme-client's own handler: a request that got no response at all.
  const onNetworkError = (error: unknown): Promise<never> => {
    const e = error as { response?: unknown; code?: string; message?: string; config?: RequestConfig };
    if (e.response === undefined && e.config !== undefined) {
      const origin = originOf(e.config) ?? "the ACME server";
      return Promise.reject(
        new NetservaError("unavailable", `ACME server ${origin} unreachable: ${e.code ?? e.message ?? "no answer"}`),
      );
    }
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  };
  const manager = acme.axios.interceptors.response as unknown as { handlers?: unknown[] };
  const handler = { fulfilled: null, rejected: onNetworkError, synchronous: false, runWhen: null };
  if (Array.isArray(manager.handlers)) manager.handlers.unshift(handler);
  else acme.axios.interceptors.response.use(null, onNetworkError);
}

/** Prepares acme-client for `serverUrl`, trusting `serverCaPem` (if given) for that server only. */
export function prepareAcmeHttp(serverUrl: string, serverCaPem: string | null): void {
  install();
  const origin = new URL(serverUrl).origin;
  if (serverCaPem) agents.set(origin, new Agent({ ca: serverCaPem, keepAlive: false }));
  else agents.delete(origin);
}
