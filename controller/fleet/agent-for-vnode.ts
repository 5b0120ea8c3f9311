// A short-lived client to one vnode's agent from the controller's home (CLI processes have no
// fleet of their own). The key and certificate are read as one pair (a renewal may be under way).
import { readFileSync } from "node:fs";
import type { HomePaths } from "../home/home-paths.ts";
import type { Vnode } from "../db/entities/index.ts";
import { createAgentClient } from "./agent-client.ts";
import { loadControllerIdentity } from "../pki/controller-certificate.ts";
import type { AgentClient } from "./agent-client.ts";

export function agentClientFor(
  paths: HomePaths,
  vnode: Pick<Vnode, "name" | "address">,
  isRevoked?: (serial: string) => boolean,
  timeoutMs = 10_000,
): AgentClient {
  const { certPem, keyPem } = loadControllerIdentity(paths);
  return createAgentClient({
    vnode: vnode.name,
    address: vnode.address,
    caPem: readFileSync(paths.caCert, "utf8"),
    certPem,
    keyPem,
    timeoutMs,
    ...(isRevoked ? { isRevoked } : {}),
  });
}
