// The agent's home on the vnode: its key (0600, generated here, never sent) and certificate as one
// unit (identity-pair.ts), the trusted CA bundle, and what it remembers across restarts.
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { NetservaError } from "../../common/errors.ts";
import { loadIdentityPair } from "./identity-pair.ts";

export interface AgentHomePaths {
  root: string;
  key: string;
  cert: string;
  ca: string;
  config: string;
  applied: string;
  revocations: string;
  leaseEpoch: string;
}

export interface AgentConfig {
  vnode: string;
  controller: string;
  enrolledAt: string;
}

export function agentHomePaths(root: string): AgentHomePaths {
  const dir = resolve(root);
  return {
    root: dir,
    key: join(dir, "agent.key"),
    cert: join(dir, "agent.crt"),
    ca: join(dir, "ca.crt"),
    config: join(dir, "agent.json"),
    applied: join(dir, "applied.json"),
    revocations: join(dir, "revoked.json"),
    leaseEpoch: join(dir, "lease-epoch.json"),
  };
}

export interface AgentIdentity {
  config: AgentConfig;
  keyPem: string;
  certPem: string;
  caPem: string;
  /** What start-up repaired in the key/certificate pair (for the log); empty on a clean home. */
  repairs: string[];
}

export function loadAgentIdentity(paths: AgentHomePaths): AgentIdentity {
  if (!existsSync(paths.config) || !existsSync(paths.ca)) {
    throw new NetservaError(
      "failed_precondition",
      `agent home ${paths.root} is not enrolled: run \`netserva-mail-agent enroll --controller HOST:PORT --token TOKEN --home ${paths.root}\``,
    );
  }
  const pair = loadIdentityPair(paths.root);
  return {
    config: JSON.parse(readFileSync(paths.config, "utf8")) as AgentConfig,
    keyPem: pair.keyPem,
    certPem: pair.certPem,
    caPem: readFileSync(paths.ca, "utf8"),
    repairs: pair.repairs,
  };
}
