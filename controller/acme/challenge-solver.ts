// The seam between an ACME order and whoever answers its challenges. DNS-01 through the DNS
// provider is the default (the controller owns the zones in PowerDNS); HTTP-01 would be answered
// by the agent's HTTP listener on the vnode (the key authorization pushed with the desired state),
// for names whose DNS the controller does not serve: same interface, not built yet.

export type ChallengeType = "dns-01" | "http-01";

/** One challenge to answer: DNS-01 `value` is the TXT content, HTTP-01 the response body. */
export interface ChallengeAnswer {
  /** The identifier (DNS name) being validated. */
  name: string;
  token: string;
  value: string;
}

export interface ChallengeSolver {
  readonly type: ChallengeType;
  /** Fails fast, before an order is placed, when a name cannot be answered (wrong zone…). */
  check(names: readonly string[]): Promise<void>;
  /** Publishes all answers; resolves once the ACME server can see them. */
  present(answers: readonly ChallengeAnswer[]): Promise<void>;
  /** Removes what present() published (best effort). */
  cleanup(answers: readonly ChallengeAnswer[]): Promise<void>;
}
