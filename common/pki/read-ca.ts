// Loads the CA's certificate and key for signing, refusing a pair that cannot work: a
// certificate that is not a CA, or a key that does not belong to it (whose signatures no peer
// would accept).
import { X509Certificate, type KeyObject } from "node:crypto";
import forge from "node-forge";
import { invalid } from "../errors.ts";
import { readPrivateKey, spkiDer } from "./rsa.ts";

export interface LoadedCa {
  cert: forge.pki.Certificate;
  key: KeyObject;
  /** Binary string of the CA's subjectKeyIdentifier, for the authorityKeyIdentifier it writes. */
  subjectKeyId: string;
}

interface ForgeExtension {
  cA?: boolean;
  subjectKeyIdentifier?: string;
}

export function readCa(caKeyPem: string, caCertPem: string): LoadedCa {
  let x509: X509Certificate;
  let cert: forge.pki.Certificate;
  try {
    x509 = new X509Certificate(caCertPem);
    cert = forge.pki.certificateFromPem(caCertPem);
  } catch {
    throw invalid("caCertPem", "is not a PEM RSA certificate");
  }
  const basic = cert.getExtension("basicConstraints") as ForgeExtension | undefined;
  if (!x509.ca || basic?.cA !== true) throw invalid("caCertPem", "is not a CA certificate (basicConstraints CA:TRUE)");
  const key = readPrivateKey(caKeyPem, "caKeyPem");
  if (!spkiDer(key).equals(spkiDer(x509.publicKey))) {
    throw invalid("caKeyPem", "does not belong to the CA certificate");
  }
  const ski = (cert.getExtension("subjectKeyIdentifier") as ForgeExtension | undefined)?.subjectKeyIdentifier;
  return {
    cert,
    key,
    subjectKeyId: ski ? forge.util.hexToBytes(ski) : cert.generateSubjectKeyIdentifier().getBytes(),
  };
}
