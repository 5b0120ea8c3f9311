// The CA material in the controller home, read as one: the CA that signs (ca.key, ca.crt), the
// bundle peers are verified against (trust.crt; just ca.crt before any rotation) and the chain
// sent after every certificate of ours (chain.crt; just ca.crt before any rotation, so an
// enrolling agent can check the CA against its join token's pin).
import { existsSync, readFileSync } from "node:fs";
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

export function readCaFiles(paths: HomePaths): CaFiles {
  const caCertPem = readFileSync(paths.caCert, "utf8");
  return {
    caKeyPem: readFileSync(paths.caKey, "utf8"),
    caCertPem,
    trustPem: readOr(paths.caTrust, caCertPem),
    chainPem: readOr(paths.caChain, caCertPem),
  };
}

/** A certificate of ours followed by the chain peers need to reach a CA they trust. */
export function withChain(certPem: string, chainPem: string): string {
  return (certPem.endsWith("\n") ? certPem : certPem + "\n") + chainPem;
}
