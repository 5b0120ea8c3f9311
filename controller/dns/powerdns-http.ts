// One HTTP exchange with the PowerDNS API, with a timeout and errors an operator can act on. The
// API key travels only in the X-API-Key header: it is never part of a URL, a message or a cause
// (fetch's own errors are reduced to their code, so nothing from the request leaks through).
import { NetservaError } from "../../common/errors.ts";

export interface PowerDnsEndpoint {
  /** Base URL of the webserver, e.g. http://127.0.0.1:8081 (no path, no key). */
  url: string;
  serverId: string;
  apiKey: string;
  timeoutMs: number;
  fetch?: typeof fetch;
}

const MAX_DETAIL = 200;

/** PowerDNS answers errors as {"error": "..."}; anything else is shown cut short. */
function detailOf(body: string): string {
  let text = body;
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (typeof parsed.error === "string") text = parsed.error;
  } catch {
    // plain text body
  }
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > MAX_DETAIL ? `${flat.slice(0, MAX_DETAIL)}…` : flat;
}

function networkCode(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown } }).cause;
  if (cause && typeof cause.code === "string") return cause.code;
  return error instanceof Error ? error.name : "network error";
}

export function apiBase(endpoint: PowerDnsEndpoint): string {
  return `${endpoint.url.replace(/\/+$/, "")}/api/v1/servers/${encodeURIComponent(endpoint.serverId)}`;
}

/** Sends one request; returns the parsed JSON body (undefined for 204). */
export async function powerDnsRequest(
  endpoint: PowerDnsEndpoint,
  method: "GET" | "PATCH",
  path: string,
  body?: unknown,
): Promise<unknown> {
  const where = `PowerDNS at ${endpoint.url}`;
  const doFetch = endpoint.fetch ?? fetch;
  let response: Response;
  try {
    response = await doFetch(`${apiBase(endpoint)}${path}`, {
      method,
      headers: {
        "X-API-Key": endpoint.apiKey,
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(endpoint.timeoutMs),
    });
  } catch (error) {
    const code = networkCode(error);
    if (code === "TimeoutError" || code === "AbortError")
      throw new NetservaError("deadline_exceeded", `${where} did not answer within ${endpoint.timeoutMs} ms`);
    throw new NetservaError(
      "unavailable",
      `${where} is unreachable (${code}): is pdns_server running with its webserver and API enabled?`,
    );
  }
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw new NetservaError("unavailable", `${where}: the answer broke off (${networkCode(error)})`);
  }
  if (response.ok) {
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new NetservaError(
        "unavailable",
        `${where} answered HTTP ${response.status} with a body that is not JSON: is the URL the PowerDNS webserver?`,
      );
    }
  }
  const detail = detailOf(text);
  const status = response.status;
  if (status === 401 || status === 403) {
    throw new NetservaError(
      "unauthenticated",
      `${where} refused the API key (HTTP ${status}): check NETSERVA_PDNS_API_KEY or dns.apiKey in controller.json against api-key in pdns.conf`,
      { field: "apiKey" },
    );
  }
  if (status === 404)
    throw new NetservaError(
      "not_found",
      `${where}: ${method} ${path} not found (HTTP 404${detail ? `: ${detail}` : ""}); check the zone and the server id '${endpoint.serverId}'`,
    );
  if (status >= 500)
    throw new NetservaError("unavailable", `${where} failed (HTTP ${status}${detail ? `: ${detail}` : ""})`);
  throw new NetservaError(
    "invalid_argument",
    `${where} refused ${method} ${path} (HTTP ${status}${detail ? `: ${detail}` : ""})`,
    { field: "dns" },
  );
}
