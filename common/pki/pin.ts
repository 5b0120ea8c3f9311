// CA pinning as `kubeadm join --discovery-token-ca-cert-hash` does it: a joining vnode has no
// trust anchor yet, so the join string carries "sha256:<hex>" of the CA's SubjectPublicKeyInfo
// and the vnode accepts the CA certificate it is shown only if the hash matches.
import { createHash, timingSafeEqual } from "node:crypto";
import { invalid } from "../errors.ts";
import { toX509 } from "./x509.ts";
import type { CertificateInput } from "./x509.ts";

export const PIN_PREFIX = "sha256:";
const PIN_PATTERN = /^sha256:[0-9a-f]{64}$/;

/** "sha256:<64 lowercase hex>" over the DER SubjectPublicKeyInfo of the certificate. */
export function caPin(caCert: CertificateInput): string {
  const spki = toX509(caCert, "caCertPem").publicKey.export({ type: "spki", format: "der" });
  return PIN_PREFIX + createHash("sha256").update(spki).digest("hex");
}

/** Checks a pin's form; hex case is folded so a pin copied in upper case still matches. */
export function parseCaPin(text: string, field = "caPin"): string {
  const pin = typeof text === "string" ? text.trim().toLowerCase() : "";
  if (!PIN_PATTERN.test(pin)) throw invalid(field, "must be 'sha256:' followed by 64 hex digits");
  return pin;
}

/** Constant-time comparison of a certificate's key hash with a pin (malformed pin: invalid). */
export function matchesPin(cert: CertificateInput, pin: string): boolean {
  const expected = Buffer.from(parseCaPin(pin).slice(PIN_PREFIX.length), "hex");
  const actual = Buffer.from(caPin(cert).slice(PIN_PREFIX.length), "hex");
  return timingSafeEqual(expected, actual);
}
