// A trust bundle: the CA certificates a peer accepts, as concatenated PEM. During a CA rotation
// it holds the old and the new CA; otherwise one. Both sides verify peers against it.
import type { X509Certificate } from "node:crypto";
import { invalid } from "../errors.ts";
import { caPin } from "./pin.ts";
import { toX509 } from "./x509.ts";
import type { CertificateInput } from "./x509.ts";

/** More would be a mistake, not a rotation. */
export const MAX_BUNDLE_CAS = 8;
const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export interface TrustedCa {
  pem: string;
  pin: string;
  x509: X509Certificate;
}

/** Splits and checks a bundle: 1..8 self-signed CA certificates, no duplicates. */
export function readTrustBundle(text: unknown, field = "caBundlePem"): TrustedCa[] {
  if (typeof text !== "string" || text.length > 64 * 1024) throw invalid(field, "must be PEM text up to 64 KiB");
  const blocks = text.match(PEM_BLOCK) ?? [];
  if (blocks.length === 0) throw invalid(field, "holds no PEM certificate");
  if (blocks.length > MAX_BUNDLE_CAS) throw invalid(field, `holds more than ${MAX_BUNDLE_CAS} certificates`);
  const seen = new Set<string>();
  return blocks.map((block, index) => {
    const x509 = toX509(block + "\n", `${field}[${index}]`);
    if (!x509.ca || !x509.checkIssued(x509) || !x509.verify(x509.publicKey))
      throw invalid(`${field}[${index}]`, "is not a self-signed CA certificate");
    const pin = caPin(x509);
    if (seen.has(pin)) throw invalid(`${field}[${index}]`, "appears twice");
    seen.add(pin);
    return { pem: block + "\n", pin, x509 };
  });
}

export function bundlePem(cas: readonly { pem: string }[]): string {
  return cas.map((ca) => (ca.pem.endsWith("\n") ? ca.pem : ca.pem + "\n")).join("");
}

/** The bundle's CA that issued `cert` (name, key id and signature), if any. */
export function issuerIn(cert: CertificateInput, cas: readonly TrustedCa[]): TrustedCa | undefined {
  const child = toX509(cert, "certificate");
  return cas.find((ca) => child.checkIssued(ca.x509) && child.verify(ca.x509.publicKey));
}

/** The PEM certificates in `text`, in order (a certificate file with its chain). */
export function pemBlocks(text: string): string[] {
  return (text.match(PEM_BLOCK) ?? []).map((block) => block + "\n");
}
