// What a certificate says, in the terms the control plane uses: serial, role, identity, names,
// validity and the key's SHA-256. Reading never implies trust: check the chain (TLS or
// verifyIssuedBy) before acting on any of it.
import { createHash } from "node:crypto";
import type { X509Certificate } from "node:crypto";
import { nameAttribute, parseSubjectAltName, toX509 } from "./x509.ts";
import type { CertificateInput } from "./x509.ts";
import { parseRoleUri, ROLE_URI_SCHEME } from "./roles.ts";
import type { PkiRole } from "./roles.ts";
import { normalizeSerialHex } from "./serial.ts";

export interface CertificateInfo {
  /** Lowercase hex without leading zeros (compare serials only in this form). */
  serialHex: string;
  /** "" when the name has no CN (or several), as Go's x509 does. */
  subjectCN: string;
  issuerCN: string;
  /** Set only when exactly one well-formed `netserva-mail://<role>/<identity>` URI is present. */
  role: PkiRole | undefined;
  identity: string | undefined;
  dnsNames: string[];
  ipAddresses: string[];
  uris: string[];
  notBefore: Date;
  notAfter: Date;
  isCA: boolean;
  /** Hex SHA-256 of the DER SubjectPublicKeyInfo (the value a CA pin holds). */
  spkiSha256: string;
}

export function inspectX509(x509: X509Certificate): CertificateInfo {
  const legacy = x509.toLegacyObject();
  const altNames = parseSubjectAltName(x509.subjectAltName);
  const valuesOf = (type: string): string[] => altNames.filter((n) => n.type === type).map((n) => n.value);
  const uris = valuesOf("URI");
  const roleUris = uris.filter((uri) => uri.toLowerCase().startsWith(ROLE_URI_SCHEME));
  const parsed = roleUris.length === 1 && roleUris[0] !== undefined ? parseRoleUri(roleUris[0]) : undefined;
  return {
    serialHex: normalizeSerialHex(x509.serialNumber),
    subjectCN: nameAttribute(legacy.subject, "CN") ?? "",
    issuerCN: nameAttribute(legacy.issuer, "CN") ?? "",
    role: parsed?.role,
    identity: parsed?.identity,
    dnsNames: valuesOf("DNS"),
    ipAddresses: valuesOf("IP Address"),
    uris,
    notBefore: x509.validFromDate,
    notAfter: x509.validToDate,
    isCA: x509.ca,
    spkiSha256: createHash("sha256")
      .update(x509.publicKey.export({ type: "spki", format: "der" }))
      .digest("hex"),
  };
}

/** Reads a PEM certificate; refuses anything else as invalid("certificate"). */
export function inspectCertificate(pem: string): CertificateInfo {
  return inspectX509(toX509(pem));
}

/** Reads a DER certificate, e.g. grpc-js `sslPeerCertificate.raw`. */
export function inspectDer(der: Uint8Array): CertificateInfo {
  return inspectX509(toX509(der));
}

/** True when `caCert` is the issuer named by `cert` and its key verifies `cert`'s signature.
 *  Checks the signature only: validity dates, role and revocation are the caller's. */
export function verifyIssuedBy(cert: CertificateInput, caCert: CertificateInput): boolean {
  const child = toX509(cert, "certificate");
  const ca = toX509(caCert, "caCertPem");
  return ca.ca && child.checkIssued(ca) && child.verify(ca.publicKey);
}
