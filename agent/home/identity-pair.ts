// The agent's key and certificate as one unit (common/pki/identity-pair.ts): identity/<n>/agent.key
// + agent.crt, made live by the `current` symlink; agent.key and agent.crt are links through it.
import {
  loadIdentityPair as loadPair,
  writeIdentityPair as writePair,
  type IdentityPair,
  type LoadedPair,
  type PairNames,
} from "../../common/pki/identity-pair.ts";

export type { IdentityPair, LoadedPair } from "../../common/pki/identity-pair.ts";

function agentPair(root: string): PairNames {
  return {
    home: "agent home",
    key: "agent.key",
    cert: "agent.crt",
    remedy: `enroll again with a new join token (\`netserva-mail agent enroll --home ${root} …\`)`,
  };
}

/** Writes the next generation and makes it live with one rename; returns its number. */
export function writeIdentityPair(root: string, pair: IdentityPair): Promise<number> {
  return writePair(root, agentPair(root), pair);
}

/** The live pair, falling back to the newest generation whose key matches its certificate. */
export function loadIdentityPair(root: string): LoadedPair {
  return loadPair(root, agentPair(root));
}
