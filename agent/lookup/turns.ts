// Work over every row of a whole state (100,000 mailboxes) written once as a generator that
// yields after each slice of rows, run either at once (small inputs, tests, tools) or in turns of
// the event loop. In turns, gRPC keepalive pings and health reports are answered between slices:
// a 100,000-row apply done at once held the agent's loop for 36 s under load, and the
// controller's keepalive (5 s) dropped the push it was applying ("Connection dropped").

/** Rows handled between two turns of the event loop. */
export const ROWS_PER_TURN = 500;

/** A computation that yields (nothing) wherever the event loop may take a turn. */
export type Steps<T> = Generator<void, T, void>;

/** Runs the steps without pausing. */
export function runAtOnce<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** setImmediate: I/O (a ping, a new request) and due timers run before the next slice. */
export const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Runs the steps, giving the event loop a turn at every yield. */
export async function runInTurns<T>(steps: Steps<T>, turn: () => Promise<void> = nextTurn): Promise<T> {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    await turn();
  }
}

/** Whether the i-th row (0-based) ends a slice: `if (endsSlice(i)) yield;` after handling it. */
export const endsSlice = (i: number): boolean => (i + 1) % ROWS_PER_TURN === 0;
