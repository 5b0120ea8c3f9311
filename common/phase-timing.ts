// Where the time of one command goes, for benchmarks: a phase of work is timed and published on
// a diagnostics channel only while someone subscribes (scripts/bench-apply --breakdown), so the
// hot path pays one `hasSubscribers` check otherwise. Names are "area.phase" (mutation.prepare).
import { channel } from "node:diagnostics_channel";

export interface PhaseTiming {
  readonly name: string;
  readonly ms: number;
}

const phases = channel("netserva.phase");

/** Runs `work`; with a subscriber, publishes how long it took (also when it fails). */
export function timed<T>(name: string, work: () => Promise<T>): Promise<T> {
  if (!phases.hasSubscribers) return work();
  const started = performance.now();
  return work().finally(() => phases.publish({ name, ms: performance.now() - started } satisfies PhaseTiming));
}

/** Calls `record` with every phase timed from now on, until the returned function is called. */
export function onPhases(record: (timing: PhaseTiming) => void): () => void {
  const listener = (message: unknown): void => record(message as PhaseTiming);
  phases.subscribe(listener);
  return () => void phases.unsubscribe(listener);
}
