// The lease holder's end of the change feed (controller/db/change-feed.ts): LISTEN on a
// connection of its own, reconnecting; what a lost notification missed is looked at again on
// reconnect (onListening) and, failing that, by the reconciler.
import { Client } from "pg";
import type { Logger } from "../../common/log.ts";
import { CHANGES_CHANNEL } from "../db/change-feed.ts";

export interface ChangeListener {
  close(): Promise<void>;
}

export interface ChangeListenerOptions {
  url: string;
  log: Logger;
  /** A vnode's change was committed. */
  onChange(vnode: string): void;
  /** Listening (again): whatever was notified while we were not is to be looked at now. */
  onListening(): void;
  /** Wait before connecting again after the connection broke (default 1 s). */
  retryMs?: number;
}

/** LISTENs on a dedicated connection (pooled ones are shared and short-lived), reconnecting. */
export function listenForChanges(options: ChangeListenerOptions): ChangeListener {
  let closed = false;
  let client: Client | undefined;
  let retry: NodeJS.Timeout | undefined;
  let down = false;
  const again = (reason: string): void => {
    if (closed || retry) return;
    if (!down) options.log.warn("change listener lost its connection", { error: reason });
    down = true;
    client?.removeAllListeners();
    client?.on("error", () => undefined);
    void client?.end().catch(() => undefined);
    client = undefined;
    retry = setTimeout(() => {
      retry = undefined;
      void start();
    }, options.retryMs ?? 1000);
  };
  const start = async (): Promise<void> => {
    const next = new Client({
      connectionString: options.url,
      connectionTimeoutMillis: 10_000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
    });
    client = next;
    next.on("error", (error: Error) => again(error.message));
    next.on("end", () => again("connection ended"));
    next.on("notification", (message) => {
      if (message.channel === CHANGES_CHANNEL && message.payload) options.onChange(message.payload);
    });
    try {
      await next.connect();
      await next.query(`listen ${CHANGES_CHANNEL}`);
      if (closed) return void (await next.end().catch(() => undefined));
      // Only after a break: at start-up the reconciler catches every vnode up.
      if (down) {
        options.log.info("change listener listening again");
        down = false;
        options.onListening();
      }
    } catch (error) {
      if (client === next) again((error as Error).message);
    }
  };
  void start();
  return {
    async close() {
      closed = true;
      if (retry) clearTimeout(retry);
      const last = client;
      client = undefined;
      last?.removeAllListeners();
      last?.on("error", () => undefined);
      await last?.end().catch(() => undefined);
    },
  };
}
