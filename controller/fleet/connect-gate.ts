// At most `limit` links connecting at once (TLS handshake and first health report), fleet-wide.
// A controller that starts (or comes back) with a thousand vnodes would otherwise open a thousand
// handshakes in the same instant; the rest wait their turn in order. Jittered backoff
// (reconnect-backoff.ts) spreads retries; this bounds what is in flight.

export interface ConnectGate {
  /** Resolves with the release function once a slot is free; call it exactly when done. */
  acquire(): Promise<() => void>;
  readonly inFlight: number;
  /** The most ever in flight at once. */
  readonly peak: number;
}

export const DEFAULT_CONNECTS_AT_ONCE = 32;

export function createConnectGate(limit = DEFAULT_CONNECTS_AT_ONCE): ConnectGate {
  if (!(limit >= 1)) throw new Error(`connect gate: limit must be at least 1, got ${limit}`);
  let inFlight = 0;
  let peak = 0;
  const waiting: Array<() => void> = [];
  const take = (): (() => void) => {
    inFlight += 1;
    peak = Math.max(peak, inFlight);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      inFlight -= 1;
      waiting.shift()?.();
    };
  };
  return {
    acquire() {
      if (inFlight < limit) return Promise.resolve(take());
      return new Promise((resolve) => waiting.push(() => resolve(take())));
    },
    get inFlight() {
      return inFlight;
    },
    get peak() {
      return peak;
    },
  };
}
