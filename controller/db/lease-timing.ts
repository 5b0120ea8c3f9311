// How long a vnode lease (and a controller's heartbeat) stays fresh, and how often its holder
// renews it. Here, below both fleet/ (the lease keeper) and pki/ (ca rekey asks which
// controllers are running), so neither has to import the other.
export const LEASE_TTL_MS = 10_000;
export const LEASE_RENEW_MS = 2000;
