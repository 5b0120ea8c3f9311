// One apply at a time per vnode: a CLI push and the reconciler can arrive together, and two
// applies interleaving in the staging directory would check each other's half-written files.
import type { MailHostPort } from "./mail-port.ts";

export function serializeApplies<T extends MailHostPort>(port: T): T {
  let tail: Promise<unknown> = Promise.resolve();
  const queued = <R>(work: () => Promise<R>): Promise<R> => {
    const run = tail.then(work, work);
    tail = run.catch(() => undefined);
    return run;
  };
  return {
    ...port,
    applyState: (state, options) => queued(() => port.applyState(state, options)),
    applyChanges: (changes, options) => queued(() => port.applyChanges(changes, options)),
  };
}
