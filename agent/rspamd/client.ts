// Minimal client for Rspamd's HTTP protocol (/ping, /checkv2) over a unix socket or TCP: the
// agent uses it for health, tests use it to see what Rspamd decides. Every call has a deadline.
import { request } from "node:http";
import { NetservaError } from "../../common/errors.ts";
import { parseListen } from "./ucl.ts";

export interface CheckRequest {
  /** Authenticated SASL user: turns on DKIM signing for their domain. */
  readonly user?: string;
  readonly ip?: string;
  readonly helo?: string;
  readonly hostname?: string;
  readonly from?: string;
  readonly rcpt?: readonly string[];
  /** Per-message settings (UCL/JSON), e.g. '{"actions":{"add header":0.1}}'. */
  readonly settings?: string;
}

export interface SymbolResult {
  readonly name: string;
  readonly score: number;
  readonly options?: string[];
}

export interface CheckResult {
  readonly action: string;
  readonly score: number;
  readonly requiredScore: number;
  readonly symbols: Record<string, SymbolResult>;
  readonly messages: Record<string, string>;
  /** DKIM-Signature header values Rspamd produced (folded, without the header name). */
  readonly dkimSignatures: string[];
  /** Headers the milter would add/remove, as Rspamd reports them. */
  readonly milter: { add_headers?: Record<string, unknown>; remove_headers?: Record<string, number> };
  readonly timeRealSec: number;
}

export interface RspamdClient {
  ping(): Promise<boolean>;
  check(message: string | Buffer, req?: CheckRequest): Promise<CheckResult>;
}

export function createRspamdClient(options: { listen: string; timeoutMs?: number }): RspamdClient {
  const target = parseListen(options.listen, "listen");
  const timeout = options.timeoutMs ?? 10_000;

  function call(
    method: "GET" | "POST",
    path: string,
    headers: Record<string, string | string[]>,
    body?: Buffer,
  ): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const where = target.kind === "unix" ? { socketPath: target.path } : { host: target.host, port: target.port };
      const req = request({ ...where, method, path, headers, timeout }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("timeout", () =>
        req.destroy(new NetservaError("deadline_exceeded", `rspamd ${path} took over ${timeout} ms`)),
      );
      req.on("error", (err) => reject(NetservaError.from(err, "unavailable")));
      req.end(body);
    });
  }

  return {
    async ping() {
      try {
        const r = await call("GET", "/ping", {});
        return r.status === 200 && r.text.trim() === "pong";
      } catch {
        return false;
      }
    },
    async check(message, req = {}) {
      const headers: Record<string, string | string[]> = {};
      if (req.user !== undefined) headers["User"] = req.user;
      if (req.ip !== undefined) headers["IP"] = req.ip;
      if (req.helo !== undefined) headers["Helo"] = req.helo;
      if (req.hostname !== undefined) headers["Hostname"] = req.hostname;
      if (req.from !== undefined) headers["From"] = req.from;
      if (req.rcpt !== undefined) headers["Rcpt"] = [...req.rcpt];
      if (req.settings !== undefined) headers["Settings"] = req.settings;
      const r = await call("POST", "/checkv2", headers, Buffer.from(message));
      if (r.status !== 200)
        throw new NetservaError("unavailable", `rspamd /checkv2 answered ${r.status}: ${r.text.slice(0, 200)}`);
      return parseCheck(r.text);
    },
  };
}

function parseCheck(text: string): CheckResult {
  const raw = JSON.parse(text) as {
    action?: string;
    score?: number;
    required_score?: number;
    time_real?: number;
    symbols?: Record<string, SymbolResult>;
    messages?: Record<string, string>;
    "dkim-signature"?: string | string[];
    milter?: CheckResult["milter"];
  };
  const dkim = raw["dkim-signature"];
  return {
    action: raw.action ?? "unknown",
    score: raw.score ?? 0,
    requiredScore: raw.required_score ?? 0,
    symbols: raw.symbols ?? {},
    messages: raw.messages ?? {},
    dkimSignatures: dkim === undefined ? [] : Array.isArray(dkim) ? dkim : [dkim],
    milter: raw.milter ?? {},
    timeRealSec: raw.time_real ?? 0,
  };
}
