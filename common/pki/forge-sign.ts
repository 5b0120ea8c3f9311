// Signs forge-built certificates and CSRs with Node's native RSA instead of forge's pure-JS
// one: ~1 ms instead of 20-60 ms of blocked event loop per signature. forge still builds and
// encodes the to-be-signed structure; only the private-key operation moves to OpenSSL.
import { sign, type KeyObject } from "node:crypto";
import forge from "node-forge";
import { signatureOperations } from "./signature-count.ts";

// Present in node-forge 1.x at run time, missing from @types/node-forge.
interface ForgeTbs {
  getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1;
  getCertificationRequestInfo(csr: forge.pki.CertificateSigningRequest): forge.asn1.Asn1;
}
const tbs = forge.pki as unknown as ForgeTbs;
const SHA256_WITH_RSA = forge.pki.oids["sha256WithRSAEncryption"] ?? "1.2.840.113549.1.1.11";

function signDer(asn: forge.asn1.Asn1, key: KeyObject): string {
  const der = Buffer.from(forge.asn1.toDer(asn).getBytes(), "binary");
  signatureOperations.sign += 1;
  return sign("sha256", der, key).toString("binary");
}

/** Signs `cert` (sha256WithRSAEncryption) with the issuer's key; returns the PEM. */
export function signCertificate(cert: forge.pki.Certificate, issuerKey: KeyObject): string {
  cert.signatureOid = SHA256_WITH_RSA;
  cert.siginfo.algorithmOid = SHA256_WITH_RSA;
  cert.tbsCertificate = tbs.getTBSCertificate(cert);
  cert.signature = signDer(cert.tbsCertificate, issuerKey);
  return forge.pki.certificateToPem(cert);
}

/** Self-signs a CSR with the requester's key; returns the PEM. */
export function signCsr(csr: forge.pki.CertificateSigningRequest, key: KeyObject): string {
  csr.signatureOid = SHA256_WITH_RSA;
  csr.siginfo.algorithmOid = SHA256_WITH_RSA;
  csr.certificationRequestInfo = tbs.getCertificationRequestInfo(csr);
  csr.signature = signDer(csr.certificationRequestInfo, key);
  return forge.pki.certificationRequestToPem(csr);
}
