// The CAs this agent verifies its peers against (ca.crt, a PEM bundle): one CA normally, the old
// and the new during a CA rotation. Replaced whole, atomically on disk, and handed to the running
// servers so new connections use it at once.
import { writePublicFile } from "../../common/pki/files.ts";
import { readTrustBundle } from "../../common/pki/trust-bundle.ts";
import type { TrustedCa } from "../../common/pki/trust-bundle.ts";

export interface TrustStore {
  pem(): string;
  cas(): TrustedCa[];
  /** Installs a checked bundle; false when it equals the one in use (nothing written). */
  replace(cas: readonly TrustedCa[]): Promise<boolean>;
}

export function createTrustStore(options: { file: string; pem: string; onChange(pem: string): void }): TrustStore {
  let pem = options.pem;
  let parsed: TrustedCa[] | undefined;
  return {
    pem: () => pem,
    cas: () => (parsed ??= readTrustBundle(pem, "ca.crt")),
    async replace(cas) {
      const next = cas.map((ca) => ca.pem).join("");
      if (next === pem) return false;
      await writePublicFile(options.file, next);
      pem = next;
      parsed = [...cas];
      options.onChange(next);
      return true;
    },
  };
}
