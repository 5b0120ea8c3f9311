// Remembers the result of each command by request id, so a retried command is answered from the
// record instead of being done twice. Bounded: the oldest records fall out first.

export interface RecordedResult {
  method: string;
  response: unknown;
}

export interface RequestRecord {
  get(requestId: string): RecordedResult | undefined;
  set(requestId: string, result: RecordedResult): void;
  readonly size: number;
}

export function createRequestRecord(options: { capacity?: number } = {}): RequestRecord {
  const capacity = options.capacity ?? 10_000;
  const entries = new Map<string, RecordedResult>();
  return {
    get: (id) => entries.get(id),
    set(id, result) {
      entries.delete(id);
      entries.set(id, result);
      if (entries.size > capacity) {
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) entries.delete(oldest);
      }
    },
    get size() {
      return entries.size;
    },
  };
}
