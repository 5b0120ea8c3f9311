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
      // The same CAs in the same order are the same bundle, whatever the PEM line endings.
      const pins = (list: readonly TrustedCa[]): string => list.map((ca) => ca.pin).join(",");
      let same = false;
      try {
        same = pins(this.cas()) === pins(cas);
      } catch {
        // An unreadable bundle in use is replaced.
      }
      if (same) return false;
      const next = cas.map((ca) => ca.pem).join("");
      await writePublicFile(options.file, next);
      pem = next;
      parsed = [...cas];
      options.onChange(next);
      return true;
    },
  };
}
