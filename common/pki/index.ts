// The PKI library: a small CA (RSA, node-forge to build, Node's OpenSSL to sign and read),
// role-carrying certificates, CA pins and one-time join tokens. See each module for the why.
export { createCertificateAuthority, issueCertificate } from "./ca.ts";
export type {
  CertificateAuthority,
  CertificateAuthorityOptions,
  IssueCertificateOptions,
  IssuedCertificate,
} from "./ca.ts";
export { readCsr } from "./csr.ts";
export type { VerifiedCsr } from "./csr.ts";
export { writePrivateFile, writePublicFile } from "./files.ts";
export type { FileData } from "./files.ts";
export { inspectCertificate, inspectDer, inspectX509, verifyIssuedBy } from "./inspect.ts";
export type { CertificateInfo } from "./inspect.ts";
export {
  createJoinToken,
  formatJoinToken,
  hashTokenSecret,
  JOIN_TOKEN_VERSION,
  parseJoinToken,
  parseTokenCredential,
  verifyTokenSecret,
} from "./join-token.ts";
export type { JoinString, JoinToken, TokenCredential } from "./join-token.ts";
export { createKeyAndCsr, createSelfSigned } from "./keys.ts";
export type { KeyAndCsr, KeyAndCsrOptions, SelfSigned, SelfSignedOptions } from "./keys.ts";
export { caPin, matchesPin, parseCaPin, PIN_PREFIX } from "./pin.ts";
export {
  checkCommonName,
  checkIdentity,
  checkRole,
  isIdentityName,
  isPkiRole,
  parseRoleUri,
  PKI_ROLES,
  roleUri,
} from "./roles.ts";
export type { PkiRole } from "./roles.ts";
export { CA_RSA_BITS, generateRsaKeyPem, LEAF_RSA_BITS } from "./rsa.ts";
export { normalizeSerialHex } from "./serial.ts";
export { CLOCK_SKEW_SECONDS } from "./validity.ts";
export { parseSubjectAltName, toX509 } from "./x509.ts";
export type { AltName, CertificateInput } from "./x509.ts";
