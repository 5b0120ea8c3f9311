// Remembers the result of each command by request id, so a retried command is answered from the
// record instead of being done twice. Bounded in entries and in bytes: the oldest records fall
// out first, and a response too large to keep (a usage list of 100,000 mailboxes) is not kept at
// all: a retry of it does the (idempotent) work again instead of pinning megabytes per call.

export interface RecordedResult {
  method: string;
  response: unknown;
}

export interface RequestRecord {
  get(requestId: string): RecordedResult | undefined;
  set(requestId: string, result: RecordedResult): void;
  readonly size: number;
  /** The estimated bytes held (strings, byte arrays, numbers), the figure that is bounded. */
  readonly bytes: number;
}

export interface RequestRecordOptions {
  capacity?: number;
  /** All records together (default 32 MiB). */
  maxBytes?: number;
  /** One record (default 1 MiB). */
  maxEntryBytes?: number;
}

/** The memory a value holds, estimated by walking it; stops counting once past `limit`. */
export function estimateBytes(value: unknown, limit: number): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0 && total <= limit) {
    const v = stack.pop();
    if (typeof v === "string") total += 2 * v.length + 16;
    else if (v instanceof Uint8Array) total += v.byteLength + 16;
    else if (Array.isArray(v)) {
      total += 16 + 8 * v.length;
      if (total <= limit) for (const item of v) stack.push(item);
    } else if (v !== null && typeof v === "object") {
      const entries = Object.entries(v);
      total += 16 + 16 * entries.length;
      if (total <= limit) for (const [, item] of entries) stack.push(item);
    } else total += 8;
  }
  return total;
}

export function createRequestRecord(options: RequestRecordOptions = {}): RequestRecord {
  const capacity = options.capacity ?? 10_000;
  const maxBytes = options.maxBytes ?? 32 * 1024 * 1024;
  const maxEntryBytes = Math.min(options.maxEntryBytes ?? 1024 * 1024, maxBytes);
  const entries = new Map<string, { result: RecordedResult; bytes: number }>();
  let bytes = 0;
  const drop = (id: string): void => {
    const entry = entries.get(id);
    if (!entry) return;
    bytes -= entry.bytes;
    entries.delete(id);
  };
  return {
    get: (id) => entries.get(id)?.result,
    set(id, result) {
      drop(id);
      const size = estimateBytes(result.response, maxEntryBytes) + 2 * id.length;
      if (size > maxEntryBytes) return;
      entries.set(id, { result, bytes: size });
      bytes += size;
      while (entries.size > capacity || bytes > maxBytes) {
        const oldest = entries.keys().next().value;
        if (oldest === undefined) break;
        drop(oldest);
      }
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}
