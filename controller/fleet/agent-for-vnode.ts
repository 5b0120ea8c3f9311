// A short-lived client to one vnode's agent from the controller's home (CLI processes have no
// fleet of their own).
import type { HomePaths } from "../home/home-paths.ts";
import type { Vnode } from "../db/entities/index.ts";
import { createAgentClient } from "./agent-client.ts";
import { readCaFiles, withChain } from "../pki/ca-files.ts";
import { loadControllerIdentity } from "../pki/controller-certificate.ts";
import type { AgentClient } from "./agent-client.ts";

export function agentClientFor(
  paths: HomePaths,
  vnode: Pick<Vnode, "name" | "address">,
  isRevoked?: (serial: string) => boolean,
  timeoutMs = 10_000,
): AgentClient {
  const ca = readCaFiles(paths);
  // Key and certificate read as one pair (a renewal may be under way).
  const { certPem, keyPem } = loadControllerIdentity(paths);
  return createAgentClient({
    vnode: vnode.name,
    address: vnode.address,
    // Every CA agents may hold a certificate from (a CA rotation's overlap), and our certificate
    // with the chain an agent that trusts only the old CA needs.
    caPem: ca.trustPem,
    certPem: withChain(certPem, ca.chainPem),
    keyPem,
    timeoutMs,
    ...(isRevoked ? { isRevoked } : {}),
  });
}
