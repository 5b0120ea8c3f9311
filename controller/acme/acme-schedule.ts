// When an ACME certificate is renewed and a failed order retried. Renewal at 2/3 of the lifetime
// (Let's Encrypt's advice: 30 days left of 90; a 6-day certificate at day 4). Retries back off
// exponentially from `retryMs`, capped at `maxMs` (controller.json acmeRetrySeconds and
// acmeRetryMaxSeconds): the old certificate is served meanwhile.

export interface RetryPolicy {
  retryMs: number;
  maxMs: number;
}

export function renewalAt(notBefore: Date, notAfter: Date): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  return new Date(notBefore.getTime() + Math.floor((lifetime * 2) / 3));
}

/** When to try again after the `failures`-th failure in a row (1 = the first). */
export function retryAt(now: Date, failures: number, policy: RetryPolicy): Date {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  const wait = Math.min(policy.retryMs * 2 ** exponent, policy.maxMs);
  return new Date(now.getTime() + wait);
}
