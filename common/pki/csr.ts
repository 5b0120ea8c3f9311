// Certificate signing requests are untrusted input. The CA takes from one only its public key,
// and only after the self-signature proves the requester holds the matching private key; the
// subject, SANs and extensions it asks for are ignored.
import forge from "node-forge";
import { invalid } from "../errors.ts";
import { MIN_RSA_BITS } from "./rsa.ts";

const oids = forge.pki.oids;
// PKCS#1 v1.5 with a SHA-2 hash; MD5/SHA-1 signatures and PSS are refused.
const ACCEPTED_SIGNATURES = new Set(
  [oids["sha256WithRSAEncryption"], oids["sha384WithRSAEncryption"], oids["sha512WithRSAEncryption"]].filter(
    (oid): oid is string => typeof oid === "string",
  ),
);
const MAX_CSR_CHARS = 16_384;

export interface VerifiedCsr {
  publicKey: forge.pki.rsa.PublicKey;
  /** The CN the requester asked for: informational only, never copied into a certificate. */
  requestedCommonName: string | undefined;
}

/** Parses a PEM CSR and verifies its self-signature; refuses anything else as `invalid(field)`. */
export function readCsr(pem: string, field = "csr"): VerifiedCsr {
  if (typeof pem !== "string" || pem.length > MAX_CSR_CHARS || !pem.includes("-----BEGIN CERTIFICATE REQUEST-----")) {
    throw invalid(field, "must be a PEM certificate signing request (BEGIN CERTIFICATE REQUEST)");
  }
  let csr: forge.pki.CertificateSigningRequest;
  try {
    csr = forge.pki.certificationRequestFromPem(pem);
  } catch (error) {
    const notRsa = error instanceof Error && /not RSA/i.test(error.message);
    throw invalid(field, notRsa ? "must carry an RSA public key" : "is not a well-formed PKCS#10 request");
  }
  if (!csr.signatureOid || !ACCEPTED_SIGNATURES.has(csr.signatureOid)) {
    throw invalid(field, "must be signed with sha256/384/512WithRSAEncryption");
  }
  let verified = false;
  try {
    verified = csr.verify();
  } catch {
    verified = false;
  }
  if (!verified) throw invalid(field, "signature does not verify: the request was not signed by its own key");
  const publicKey = csr.publicKey as forge.pki.rsa.PublicKey | null;
  if (!publicKey || publicKey.n.bitLength() < MIN_RSA_BITS) {
    throw invalid(field, `RSA key must have at least ${MIN_RSA_BITS} bits`);
  }
  const cn: unknown = csr.subject.getField("CN")?.value;
  return { publicKey, requestedCommonName: typeof cn === "string" ? cn : undefined };
}
