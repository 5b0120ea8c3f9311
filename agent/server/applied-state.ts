// The generation this vnode last applied, kept on disk so a restarted agent knows where it is
// and the reconciler can tell what it missed. It only moves forwards. A file that cannot be read
// counts as generation 0 (the controller then sends the whole state) and is reported.
import { killPoint } from "../apply/kill-points.ts";
import { readStateFile, writeStateFile } from "./state-file.ts";

export interface AppliedState {
  readonly generation: bigint;
  /** Why the file on disk was not used at start-up, if it was not. */
  readonly problem: string | undefined;
  /** Records `generation` if it is newer; returns whether it moved. */
  set(generation: bigint): Promise<boolean>;
}

export function createAppliedState(options: { file?: string }): AppliedState {
  const read = options.file
    ? readStateFile(options.file, 0n, (data) => {
        const value = (data as { generation?: unknown } | null)?.generation;
        return typeof value === "string" && /^\d{1,20}$/.test(value) ? BigInt(value) : undefined;
      })
    : { value: 0n };
  let generation = read.value;
  return {
    get generation() {
      return generation;
    },
    problem: read.problem,
    async set(value) {
      if (value <= generation) return false;
      killPoint("state-file:before");
      if (options.file) writeStateFile(options.file, { generation: value.toString() });
      killPoint("state-file:after");
      generation = value;
      return true;
    },
  };
}
