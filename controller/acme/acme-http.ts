// How acme-client talks HTTP, set once per process: its shared axios instance gets (1) per-server
// trust for ACME servers with their own CA (`--server-ca`: Pebble, a private ACME server), chosen
// by the request's origin so two servers never share a trust store, (2) no retries inside a request
// (our own schedule retries with backoff and is visible; acme-client's would sleep silently, up to
// a Retry-After of hours), and (3) network failures turned into an error that says which server
// could not be reached (acme-client's own path loses the cause), and (4) an answer that tells us
// to wait — `urn:ietf:params:acme:error:rateLimited`, or any error status with a Retry-After —
// turned into an AcmeRetryLater carrying until when (acme-client keeps only the detail text).
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

/** The ACME server told us to wait (rate limit, or overloaded) until `retryAfter` (if it said). */
export class AcmeRetryLater extends NetservaError {
  readonly retryAfter: Date | undefined;
  readonly rateLimited: boolean;

  constructor(message: string, retryAfter: Date | undefined, rateLimited: boolean) {
    super("unavailable", message);
    this.retryAfter = retryAfter;
    this.rateLimited = rateLimited;
  }
}

export const RATE_LIMITED = "urn:ietf:params:acme:error:rateLimited";

/** A Retry-After header (seconds or an HTTP date, RFC 9110 §10.2.3) as a moment; undefined if absent or bad. */
export function retryAfterOf(headers: unknown, now = new Date()): Date | undefined {
  const raw = (headers as Record<string, unknown> | undefined)?.["retry-after"];
  if (typeof raw !== "string" && typeof raw !== "number") return undefined;
  const text = String(raw).trim();
  if (/^\d+$/.test(text)) return new Date(now.getTime() + Number(text) * 1000);
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : new Date(date);
}

interface ProblemResponse {
  status: number;
  headers: unknown;
  data: unknown;
  config?: RequestConfig;
}

/** After acme-client's own handler: an answer that says "wait" becomes an AcmeRetryLater. */
function onWaitAnswer<R extends ProblemResponse>(response: R): R | Promise<never> {
  const problem = (response.data ?? {}) as { type?: unknown; detail?: unknown };
  const rateLimited = problem.type === RATE_LIMITED || response.status === 429;
  const retryAfter = retryAfterOf(response.headers);
  if (!rateLimited && !(response.status >= 500 && retryAfter !== undefined)) return response;
  const origin = (response.config ? originOf(response.config) : undefined) ?? "the ACME server";
  const detail = typeof problem.detail === "string" ? `: ${problem.detail.slice(0, 300)}` : "";
  const until = retryAfter ? ` until ${retryAfter.toISOString()}` : "";
  const what = rateLimited ? "rate limited" : `busy (HTTP ${response.status})`;
  return Promise.reject(new AcmeRetryLater(`ACME server ${origin}: ${what}${until}${detail}`, retryAfter, rateLimited));
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
  // Last in line: acme-client's handler has turned every answer into a response by then.
  acme.axios.interceptors.response.use(onWaitAnswer);
}

/** Prepares acme-client for `serverUrl`, trusting `serverCaPem` (if given) for that server only. */
export function prepareAcmeHttp(serverUrl: string, serverCaPem: string | null): void {
  install();
  const origin = new URL(serverUrl).origin;
  if (serverCaPem) agents.set(origin, new Agent({ ca: serverCaPem, keepAlive: false }));
  else agents.delete(origin);
}
