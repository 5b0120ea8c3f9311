// A failed write names the file and, for a full filesystem, says so in the words an operator
// searches for ("no space left on device"), instead of Node's bare "ENOSPC: …, write".
import { NetservaError } from "../../common/errors.ts";

const FULL = new Set(["ENOSPC", "EDQUOT"]);

export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && FULL.has(code);
}

/** The error to throw when `path` could not be written; a full filesystem is a refusal, not a bug. */
export function fileWriteError(err: unknown, path: string): Error {
  if (err instanceof NetservaError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOSPC")
    return new NetservaError("failed_precondition", `no space left on device: cannot write ${path}`, { cause: err });
  if (code === "EDQUOT")
    return new NetservaError("failed_precondition", `disk quota exceeded: cannot write ${path}`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return Object.assign(new Error(`cannot write ${path}: ${message}`, { cause: err }), code ? { code } : {});
}
