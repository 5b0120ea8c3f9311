// Delays between a link's reconnect attempts: an exponential ceiling (doubling, capped) with
// jitter under it, so that the links of a whole fleet cut off at once (a controller restart, a
// switch going down) do not all knock again in the same instant when it comes back.

export interface ReconnectBackoffOptions {
  /** First ceiling, in ms. */
  initialMs: number;
  /** The ceiling never grows past this, in ms. */
  maxMs: number;
  /** A number in [0, 1); Math.random unless a test fixes the sequence. */
  random?: () => number;
}

export interface ReconnectBackoff {
  /** The delay before the next attempt, in [ceiling / 2, ceiling); the ceiling then doubles. */
  next(): number;
  /** After a success: the next failure starts again from the first ceiling. */
  reset(): void;
}

export function createReconnectBackoff(options: ReconnectBackoffOptions): ReconnectBackoff {
  if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs))
    throw new Error(`reconnect backoff: need 0 < initialMs <= maxMs, got ${options.initialMs} and ${options.maxMs}`);
  const random = options.random ?? Math.random;
  let ceiling = options.initialMs;
  return {
    next() {
      // "Equal jitter": half the ceiling is kept, so a failing link still backs off; the other
      // half is spread at random.
      const delay = Math.floor(ceiling / 2 + random() * (ceiling / 2));
      ceiling = Math.min(ceiling * 2, options.maxMs);
      return delay;
    },
    reset() {
      ceiling = options.initialMs;
    },
  };
}
