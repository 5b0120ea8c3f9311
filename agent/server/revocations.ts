// The set of certificate serials the controller has revoked, kept on disk so an agent that
// restarts still refuses them. A file that cannot be read starts the agent with none (reported);
// the controller pushes its list again as soon as it connects.
import { normalizeSerial } from "../../common/identity/peer.ts";
import { readStateFile, writeStateFile } from "./state-file.ts";

export interface Revocations {
  has(serial: string): boolean;
  replace(serials: readonly string[]): Promise<number>;
  /** Calls `onRevoked` once if `serial` is revoked later (a connection closing itself at once);
   *  returns the function that forgets it (call it when the connection ends). */
  guard(serial: string, onRevoked: () => void): () => void;
  readonly size: number;
  /** Why the file on disk was not used at start-up, if it was not. */
  readonly problem: string | undefined;
}

export function createRevocations(options: { file?: string } = {}): Revocations {
  const read = options.file
    ? readStateFile<string[]>(options.file, [], (data) =>
        Array.isArray(data) && data.every((s) => typeof s === "string") ? (data as string[]) : undefined,
      )
    : { value: [] };
  let serials = new Set(read.value.map(normalizeSerial));
  const guards = new Map<() => void, string>();
  return {
    has: (serial) => serials.has(normalizeSerial(serial)),
    guard(serial, onRevoked) {
      guards.set(onRevoked, normalizeSerial(serial));
      return () => void guards.delete(onRevoked);
    },
    async replace(list) {
      const next = new Set(list.map(normalizeSerial));
      if (options.file) writeStateFile(options.file, [...next], 0o644);
      serials = next;
      for (const [onRevoked, serial] of guards) {
        if (!serials.has(serial)) continue;
        guards.delete(onRevoked);
        onRevoked();
      }
      return serials.size;
    },
    get size() {
      return serials.size;
    },
    problem: read.problem,
  };
}
