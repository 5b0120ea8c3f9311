// The set of certificate serials the controller has revoked, kept on disk so an agent that
// restarts still refuses them.
import { readFileSync, existsSync } from "node:fs";
import { writeFile, rename } from "node:fs/promises";
import { normalizeSerial } from "../../common/identity/peer.ts";

export interface Revocations {
  has(serial: string): boolean;
  replace(serials: readonly string[]): Promise<number>;
  /** Calls `onRevoked` once if `serial` is revoked later (a connection closing itself at once);
   *  returns the function that forgets it (call it when the connection ends). */
  guard(serial: string, onRevoked: () => void): () => void;
  readonly size: number;
}

export function createRevocations(options: { file?: string } = {}): Revocations {
  let serials = new Set<string>();
  if (options.file && existsSync(options.file)) {
    const parsed: unknown = JSON.parse(readFileSync(options.file, "utf8"));
    if (Array.isArray(parsed))
      serials = new Set(parsed.filter((s): s is string => typeof s === "string").map(normalizeSerial));
  }
  const guards = new Map<() => void, string>();
  return {
    has: (serial) => serials.has(normalizeSerial(serial)),
    guard(serial, onRevoked) {
      guards.set(onRevoked, normalizeSerial(serial));
      return () => void guards.delete(onRevoked);
    },
    async replace(list) {
      serials = new Set(list.map(normalizeSerial));
      if (options.file) {
        const temp = `${options.file}.tmp-${process.pid}`;
        await writeFile(temp, JSON.stringify([...serials]), { mode: 0o644 });
        await rename(temp, options.file);
      }
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
  };
}
