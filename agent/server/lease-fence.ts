// The lease fence: with several controllers on one PostgreSQL each vnode is driven by the holder
// of its lease, and every command carries the holder's lease epoch (strictly increasing per vnode,
// bumped on every takeover). The agent keeps the highest epoch it has seen, on disk so a restart
// does not forget it, and refuses an older one: a controller whose lease lapsed (cut off from the
// database, paused) cannot push any more once its successor has spoken. Epoch 0 is unfenced (one
// controller, PGlite, a dry run, an older controller) and always passes;
// the generation checks still order what it sends.
import { NetservaError } from "../../common/errors.ts";
import { readStateFile, writeStateFile } from "./state-file.ts";

export interface LeaseFence {
  /** The highest epoch seen so far (0: none). */
  readonly highest: bigint;
  /** Why the file on disk was not used at start-up, if it was not. */
  readonly problem: string | undefined;
  /** Lets a command with `epoch` through (remembering it when newer) or throws FAILED_PRECONDITION. */
  admit(epoch: bigint): void;
}

export function createLeaseFence(options: { file?: string } = {}): LeaseFence {
  const read = options.file
    ? readStateFile(options.file, 0n, (data) => {
        const value = (data as { epoch?: unknown } | null)?.epoch;
        return typeof value === "string" && /^\d{1,20}$/.test(value) ? BigInt(value) : undefined;
      })
    : { value: 0n };
  let highest = read.value;
  return {
    get highest() {
      return highest;
    },
    problem: read.problem,
    admit(epoch) {
      if (epoch === 0n || epoch === highest) return;
      if (epoch < highest)
        throw new NetservaError(
          "failed_precondition",
          `lease epoch ${epoch} is older than epoch ${highest} this agent has seen: the controller sending it no longer holds this vnode's lease`,
          { field: "meta.lease_epoch" },
        );
      // Written before the command runs (sync, atomic): a newer holder is never forgotten.
      if (options.file) writeStateFile(options.file, { epoch: epoch.toString() });
      highest = epoch;
    },
  };
}
