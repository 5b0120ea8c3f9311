// Certificate validity windows. X.509 times have whole-second precision, so dates are truncated
// here and the Date a caller gets back is exactly what the certificate says.
import { invalid } from "../errors.ts";

/** Certificates issued "now" start this far in the past, so a vnode whose clock lags a little
 *  does not reject a certificate as not yet valid. */
export const CLOCK_SKEW_SECONDS = 60;
const MAX_VALID_SECONDS = 100 * 366 * 86_400;

export interface ValidityOptions {
  /** Length of validity, counted from `notBefore` or, without it, from now. */
  validSeconds: number;
  /** Explicit start (tests use a past one to make an expired certificate); no backdating. */
  notBefore?: Date;
  now?: Date;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

export function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

export function computeValidity(options: ValidityOptions): Validity {
  const { validSeconds, notBefore } = options;
  if (!Number.isInteger(validSeconds) || validSeconds <= 0 || validSeconds > MAX_VALID_SECONDS) {
    throw invalid("validSeconds", "must be a positive whole number of seconds (at most 100 years)");
  }
  if (notBefore !== undefined && !(notBefore instanceof Date && Number.isFinite(notBefore.getTime()))) {
    throw invalid("notBefore", "must be a valid Date");
  }
  const start = wholeSeconds(notBefore ?? options.now ?? new Date());
  return {
    notBefore: notBefore === undefined ? new Date(start.getTime() - CLOCK_SKEW_SECONDS * 1000) : start,
    notAfter: new Date(start.getTime() + validSeconds * 1000),
  };
}

/**
 * When a certificate is due for renewal: two thirds of its lifetime after it was issued. A
 * certificate issued "now" starts CLOCK_SKEW_SECONDS in the past, and that minute is not
 * lifetime: counted in, a short-lived one (30 s in tests) would be due the moment it arrives,
 * and its renewal due again at once, until the controller's per-identity limit refused it.
 */
export function renewalPoint(notBefore: Date, notAfter: Date): Date {
  const span = notAfter.getTime() - notBefore.getTime();
  const issued = notBefore.getTime() + (span > CLOCK_SKEW_SECONDS * 1000 ? CLOCK_SKEW_SECONDS * 1000 : 0);
  return new Date(issued + Math.floor(((notAfter.getTime() - issued) * 2) / 3));
}
