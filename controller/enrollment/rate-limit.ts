// Token buckets by key (a source address, a join-token id, a certificate identity): `burst`
// requests at once, then one every `refillSeconds`. Memory is bounded: past `maxKeys` the key
// least recently used is forgotten (which at worst forgives it).

export interface RateLimiter {
  /** Takes one token; returns 0 when allowed, else the seconds until one is free. */
  take(key: string): number;
  /** The seconds until `key` has a token again (0: it has one); takes nothing. */
  wait(key: string): number;
}

export interface RateLimit {
  burst: number;
  refillSeconds: number;
}

export function createRateLimiter(
  limit: RateLimit,
  options: { maxKeys?: number; now?: () => number } = {},
): RateLimiter {
  const maxKeys = options.maxKeys ?? 10_000;
  const now = options.now ?? Date.now;
  const buckets = new Map<string, { tokens: number; at: number }>();
  const current = (key: string): { tokens: number; at: number } => {
    const t = now();
    const bucket = buckets.get(key) ?? { tokens: limit.burst, at: t };
    const refilled = Math.min(limit.burst, bucket.tokens + (t - bucket.at) / (limit.refillSeconds * 1000));
    return { tokens: refilled, at: t };
  };
  const secondsUntilOne = (tokens: number): number => Math.max(1, Math.ceil((1 - tokens) * limit.refillSeconds));
  return {
    take(key) {
      const bucket = current(key);
      buckets.delete(key);
      if (bucket.tokens < 1) {
        buckets.set(key, bucket);
        return secondsUntilOne(bucket.tokens);
      }
      buckets.set(key, { tokens: bucket.tokens - 1, at: bucket.at });
      if (buckets.size > maxKeys) {
        const oldest = buckets.keys().next().value;
        if (oldest !== undefined) buckets.delete(oldest);
      }
      return 0;
    },
    wait(key) {
      if (!buckets.has(key)) return 0;
      const bucket = current(key);
      return bucket.tokens >= 1 ? 0 : secondsUntilOne(bucket.tokens);
    },
  };
}
