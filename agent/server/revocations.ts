// The set of certificate serials the controller has revoked, kept on disk so an agent that
// restarts still refuses them. A file that cannot be read starts the agent with none (reported);
// the controller pushes its list again as soon as it connects.
import { normalizeSerial } from "../../common/identity/peer.ts";
import { readStateFile, writeStateFile } from "./state-file.ts";

export interface Revocations {
  has(serial: string): boolean;
  replace(serials: readonly string[]): Promise<number>;
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
  return {
    has: (serial) => serials.has(normalizeSerial(serial)),
    async replace(list) {
      const next = new Set(list.map(normalizeSerial));
      if (options.file) writeStateFile(options.file, [...next], 0o644);
      serials = next;
      return serials.size;
    },
    get size() {
      return serials.size;
    },
    problem: read.problem,
  };
}
