// Health must never wait on a slow daemon: every probe gets a deadline and a small cache.
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: timeout after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Remembers a value for `ttlMs`; concurrent callers share one in-flight probe. */
export function cached<T>(ttlMs: number, probe: () => Promise<T>): () => Promise<T> {
  let last: { at: number; value: T } | undefined;
  let inflight: Promise<T> | undefined;
  return () => {
    if (last && Date.now() - last.at < ttlMs) return Promise.resolve(last.value);
    inflight ??= probe()
      .then((value) => {
        last = { at: Date.now(), value };
        return value;
      })
      .finally(() => {
        inflight = undefined;
      });
    return inflight;
  };
}
