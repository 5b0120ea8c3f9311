// What an administrator checks by hand with `openssl s_client`: protocol, cipher, certificate
// subject, issuer, expiry, whether it chains to a trusted CA and whether it names the host.
import { checkServerIdentity, rootCertificates, type ConnectionOptions, type TLSSocket } from "node:tls";

export interface TlsFacts {
  protocol: string;
  cipher: string;
  subject: string;
  issuer: string;
  notAfter: string;
  subjectAltName: string;
  trusted: boolean;
  nameMatches: boolean;
  /** Why the certificate is not acceptable; undefined when it is. */
  problem: string | undefined;
}

/** Trust the system CAs plus an extra one (the controller's CA issues vnode mail certificates). */
export function tlsOptions(serverName: string, caPem: string | undefined): ConnectionOptions {
  const ca = caPem ? [...rootCertificates, caPem] : [...rootCertificates];
  // Verification is judged after the handshake so the step can say exactly what is wrong.
  return { ca, servername: serverName, rejectUnauthorized: false, minVersion: "TLSv1.2" };
}

function dn(fields: Record<string, string | string[] | undefined> | undefined): string {
  if (!fields) return "";
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join("+") : (v ?? "")}`)
    .join(", ");
}

const EXPLAIN: Record<string, string> = {
  CERT_HAS_EXPIRED: "certificate has expired",
  CERT_NOT_YET_VALID: "certificate is not yet valid",
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate",
  SELF_SIGNED_CERT_IN_CHAIN: "self-signed certificate in the chain",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "certificate does not chain to a trusted CA (incomplete chain?)",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "certificate issuer is not trusted",
};

export function tlsFacts(socket: TLSSocket, serverName: string): TlsFacts {
  const cert = socket.getPeerCertificate();
  const nameError = cert && cert.raw ? checkServerIdentity(serverName, cert) : new Error("no certificate");
  const authError = socket.authorizationError ? String(socket.authorizationError) : undefined;
  const chainError = authError && authError !== "ERR_TLS_CERT_ALTNAME_INVALID" ? authError : undefined;
  const notAfter = cert?.valid_to ? new Date(cert.valid_to).toISOString() : "";
  const problem = chainError
    ? `${EXPLAIN[chainError] ?? chainError}${chainError === "CERT_HAS_EXPIRED" ? ` (not after ${notAfter})` : ""}`
    : nameError
      ? `certificate name mismatch: ${serverName} is not in ${cert?.subjectaltname ?? dn(cert?.subject)}`
      : undefined;
  return {
    protocol: socket.getProtocol() ?? "",
    cipher: socket.getCipher()?.name ?? "",
    subject: dn(cert?.subject),
    issuer: dn(cert?.issuer),
    notAfter,
    subjectAltName: cert?.subjectaltname ?? "",
    trusted: chainError === undefined,
    nameMatches: nameError === undefined,
    problem,
  };
}
