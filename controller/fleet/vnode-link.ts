// One controller→agent link: a health watch that reconnects by itself. Missing reports for
// `staleAfterMs` count as down (the stream is then restarted), so a vanished agent is noticed
// even when TCP does not say so.
import type { HealthReport } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { create } from "@bufbuild/protobuf";
import { WatchHealthRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { Logger } from "../../common/log.ts";
import { createAgentClient } from "./agent-client.ts";
import type { AgentClient, AgentClientOptions } from "./agent-client.ts";
import { createReconnectBackoff } from "./reconnect-backoff.ts";
import type { ConnectGate } from "./connect-gate.ts";

/** Reconnect delays: the ceiling doubles from 250 ms to 5 s, the delay is jittered under it. */
export const RECONNECT_INITIAL_MS = 250;
export const RECONNECT_MAX_MS = 5000;

export interface VnodeLinkOptions extends AgentClientOptions {
  intervalMs: number;
  staleAfterMs: number;
  log: Logger;
  onReport(report: HealthReport): void;
  onDown(reason: string): void;
  /** Shared by the fleet's links: bounds how many connect (handshake + first report) at once. */
  gate?: ConnectGate;
}

export interface VnodeLink {
  readonly client: AgentClient;
  readonly connected: boolean;
  /** quiet: the link is being replaced (a new identity), so the vnode is not counted down. */
  close(options?: { quiet?: boolean }): void;
}

export function createVnodeLink(options: VnodeLinkOptions): VnodeLink {
  const client = createAgentClient(options);
  let connected = false;
  let closed = false;
  let quiet = false;
  const backoff = createReconnectBackoff({ initialMs: RECONNECT_INITIAL_MS, maxMs: RECONNECT_MAX_MS });
  let staleTimer: NodeJS.Timeout | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let cancel: (() => void) | undefined;
  let releaseSlot = (): void => undefined;

  const down = (reason: string): void => {
    if (quiet) return;
    if (connected) options.log.warn("vnode down", { reason });
    connected = false;
    options.onDown(reason);
  };
  const armStale = (): void => {
    if (staleTimer) clearTimeout(staleTimer);
    staleTimer = setTimeout(() => {
      down(`no health report for ${options.staleAfterMs} ms`);
      cancel?.();
    }, options.staleAfterMs);
  };
  const watch = (): void => {
    if (closed) return;
    if (!options.gate) {
      open(() => undefined);
      return;
    }
    void options.gate.acquire().then((release) => {
      if (closed) release();
      else open(release);
    });
  };
  /** One health stream; `release` frees the connect slot at its first report or its end. */
  const open = (release: () => void): void => {
    releaseSlot = release;
    const stream = client.watchHealth(create(WatchHealthRequestSchema, { intervalMs: options.intervalMs }));
    let ended = false;
    cancel = () => stream.cancel();
    armStale();
    stream.on("data", (report: HealthReport) => {
      release();
      if (!connected) options.log.info("vnode up", { agent_version: report.agentVersion });
      connected = true;
      backoff.reset();
      armStale();
      options.onReport(report);
    });
    const again = (reason: string): void => {
      if (ended) return;
      ended = true;
      release();
      if (staleTimer) clearTimeout(staleTimer);
      down(reason);
      if (closed) return;
      retryTimer = setTimeout(watch, backoff.next());
    };
    stream.on("error", (error: Error) => again(error.message));
    stream.on("end", () => again("health stream ended"));
  };
  watch();
  return {
    client,
    get connected() {
      return connected;
    },
    close(closeOptions) {
      closed = true;
      quiet = closeOptions?.quiet === true;
      if (staleTimer) clearTimeout(staleTimer);
      if (retryTimer) clearTimeout(retryTimer);
      cancel?.();
      releaseSlot();
      client.close();
    },
  };
}
