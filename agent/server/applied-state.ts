// The generation this vnode last applied, kept on disk so a restarted agent knows where it is
// and the reconciler can tell what it missed.
import { existsSync, readFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";

export interface AppliedState {
  readonly generation: bigint;
  set(generation: bigint): Promise<void>;
}

export function createAppliedState(options: { file?: string }): AppliedState {
  let generation = 0n;
  if (options.file && existsSync(options.file)) {
    const parsed = JSON.parse(readFileSync(options.file, "utf8")) as { generation?: string };
    if (typeof parsed.generation === "string" && /^\d+$/.test(parsed.generation))
      generation = BigInt(parsed.generation);
  }
  return {
    get generation() {
      return generation;
    },
    async set(value) {
      generation = value;
      if (options.file) {
        const temp = `${options.file}.tmp-${process.pid}`;
        await writeFile(temp, JSON.stringify({ generation: value.toString() }));
        await rename(temp, options.file);
      }
    },
  };
}
