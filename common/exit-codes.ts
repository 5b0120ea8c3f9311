// Exit codes (DESIGN.md): 0 done, 1 refused input, 2 usage, 3 not found, 4 conflict, 5 unreachable.
import type { ErrorCode } from "./errors.ts";

export const EXIT = { ok: 0, refused: 1, usage: 2, notFound: 3, conflict: 4, unreachable: 5, internal: 70 } as const;

export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case "invalid_argument":
      return EXIT.refused;
    case "usage":
      return EXIT.usage;
    case "not_found":
      return EXIT.notFound;
    case "already_exists":
    case "failed_precondition":
      return EXIT.conflict;
    case "unavailable":
    case "deadline_exceeded":
    case "unauthenticated":
    case "permission_denied":
      return EXIT.unreachable;
    case "internal":
      return EXIT.internal;
  }
}
