/**
 * Undo stack for a benchmark script: namespaces, daemons and work dirs registered as they are
 * made, torn down newest first on exit or on SIGINT/SIGTERM/SIGHUP, each step bounded so one
 * stuck daemon cannot keep the rest (and the namespaces) alive.
 */
export type OnCleanup = (what: string, run: () => Promise<void> | void) => void;

export interface Cleanups {
  onCleanup: OnCleanup;
  /** Runs every registered step once; later calls return the same promise. */
  cleanup: () => Promise<void>;
}

const STEP_MS = 20_000;
const SIGNALS = [
  ["SIGINT", 130],
  ["SIGTERM", 143],
  ["SIGHUP", 129],
] as const;

export function createCleanups(log: (line: string) => void): Cleanups {
  const steps: Array<{ what: string; run: () => Promise<void> | void }> = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaning ??= (async () => {
      for (let step = steps.pop(); step; step = steps.pop()) {
        const { what, run } = step;
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => {
          timer = setTimeout(() => resolve(log(`cleanup of ${what} timed out`)), STEP_MS);
        });
        try {
          await Promise.race([run(), late]);
        } catch (error) {
          log(`cleanup of ${what} failed: ${(error as Error).message}`);
        } finally {
          clearTimeout(timer);
        }
      }
    })();
    return cleaning;
  };
  for (const [signal, code] of SIGNALS)
    process.once(signal, () => {
      log(`${signal}: cleaning up`);
      void cleanup().finally(() => process.exit(code));
    });
  return { onCleanup: (what, run) => void steps.push({ what, run }), cleanup };
}
