// The CA material in the controller home, read as one: the CA that signs (ca.key, ca.crt), the
// bundle peers are verified against (trust.crt; just ca.crt before any rotation) and the chain
// sent after every certificate of ours (chain.crt; just ca.crt before any rotation, so an
// enrolling agent can check the CA against its join token's pin).
import { createPublicKey, X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { NetservaError } from "../../common/errors.ts";
import type { HomePaths } from "../home/home-paths.ts";

export interface CaFiles {
  caKeyPem: string;
  caCertPem: string;
  trustPem: string;
  chainPem: string;
}

function readOr(path: string, fallback: string): string {
  return existsSync(path) ? readFileSync(path, "utf8") : fallback;
}

/** How long a reader waits out another controller rewriting ca.key and ca.crt (two renames). */
const PAIR_SETTLE_MS = 2_000;
const PAIR_RETRY_MS = 10;

function sameKey(keyPem: string, certPem: string): boolean {
  try {
    const spki = (k: ReturnType<typeof createPublicKey>): Buffer => k.export({ type: "spki", format: "der" });
    return spki(createPublicKey(keyPem)).equals(spki(new X509Certificate(certPem).publicKey));
  } catch {
    return false; // a half-read file: read again
  }
}

/**
 * The signing CA's key and certificate as one pair. A CA step on another controller rewrites
 * ca.key and then ca.crt (each atomically, but not together): a reader between the two would
 * sign with the new key under the old name. So the pair is read until the key matches the
 * certificate, waiting a few ms at a time (synchronously: callers are synchronous and the
 * window is two renames wide); a pair that never matches is an error naming both files.
 */
export function readSigningCa(paths: HomePaths): { caKeyPem: string; caCertPem: string } {
  const deadline = Date.now() + PAIR_SETTLE_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const caKeyPem = readFileSync(paths.caKey, "utf8");
    const caCertPem = readFileSync(paths.caCert, "utf8");
    if (sameKey(caKeyPem, caCertPem)) return { caKeyPem, caCertPem };
    if (Date.now() > deadline)
      throw new NetservaError(
        "failed_precondition",
        `the CA key in ${paths.caKey} does not belong to the certificate in ${paths.caCert}: restore the pair (ca/ of this home) or run the controller again to rewrite it from the database`,
        { field: "ca/ca.key" },
      );
    Atomics.wait(pause, 0, 0, PAIR_RETRY_MS);
  }
}

export function readCaFiles(paths: HomePaths): CaFiles {
  const { caKeyPem, caCertPem } = readSigningCa(paths);
  return {
    caKeyPem,
    caCertPem,
    trustPem: readOr(paths.caTrust, caCertPem),
    chainPem: readOr(paths.caChain, caCertPem),
  };
}

/** A certificate of ours followed by the chain peers need to reach a CA they trust. */
export function withChain(certPem: string, chainPem: string): string {
  return (certPem.endsWith("\n") ? certPem : certPem + "\n") + chainPem;
}
