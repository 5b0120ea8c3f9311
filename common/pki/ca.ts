// The controller's certificate authority: one self-signed RSA root that signs every agent and
// controller certificate directly (pathlen 0, no intermediates). Role and identity come from the
// caller, who authenticated the enrollment; a CSR contributes only its verified public key.
import forge from "node-forge";
import { invalid, NetservaError } from "../errors.ts";
import { readCsr } from "./csr.ts";
import { signCertificate } from "./forge-sign.ts";
import { buildLeafCertificate } from "./leaf.ts";
import { readCa } from "./read-ca.ts";
import { CA_RSA_BITS, generateRsaKeyPem, readPrivateKey, readPublicKey, toForgePublicKey } from "./rsa.ts";
import { checkCommonName } from "./roles.ts";
import type { PkiRole } from "./roles.ts";
import { randomSerialHex } from "./serial.ts";
import { computeValidity } from "./validity.ts";

export interface CertificateAuthorityOptions {
  /** Subject CN of the root, e.g. "netserva-mail CA (prod)": 1-64 printable characters. */
  commonName: string;
  validDays: number;
  /** Reuse an existing key (PEM); otherwise a fresh RSA key of `keyBits` (default 3072). */
  keyPem?: string;
  keyBits?: number;
}

export interface CertificateAuthority {
  keyPem: string;
  certPem: string;
}

export async function createCertificateAuthority(options: CertificateAuthorityOptions): Promise<CertificateAuthority> {
  const { validDays } = options;
  const commonName = checkCommonName(options.commonName);
  if (!Number.isInteger(validDays) || validDays <= 0 || validDays > 36_600) {
    throw invalid("validDays", "must be a whole number of days from 1 to 36600");
  }
  const keyPem = options.keyPem ?? (await generateRsaKeyPem(options.keyBits ?? CA_RSA_BITS));
  const key = readPrivateKey(keyPem, "keyPem");
  const validity = computeValidity({ validSeconds: validDays * 86_400 });
  const name = [
    { shortName: "CN", value: commonName },
    { shortName: "O", value: "netserva-mail" },
  ];
  const cert = forge.pki.createCertificate();
  cert.version = 2;
  cert.publicKey = toForgePublicKey(key);
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = validity.notBefore;
  cert.validity.notAfter = validity.notAfter;
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  return { keyPem, certPem: signCertificate(cert, key) };
}

export interface IssueCertificateOptions {
  caKeyPem: string;
  caCertPem: string;
  /** The requester's CSR (self-signature verified), or else its bare public key. */
  csrPem?: string;
  publicKeyPem?: string;
  role: PkiRole;
  /** Vnode name for an agent, controller name for a controller. */
  identity: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  validSeconds: number;
  /** Explicit start of validity (no clock-skew backdating); a past one makes an expired cert. */
  notBefore?: Date;
}

export interface IssuedCertificate {
  certPem: string;
  /** 32 lowercase hex digits, no leading zero: the form revocation lists and the DB use. */
  serialHex: string;
  notBefore: Date;
  /** Authoritative: shortened to the CA's own expiry when the request reached past it. */
  notAfter: Date;
}

export function issueCertificate(options: IssueCertificateOptions): IssuedCertificate {
  if ((options.csrPem === undefined) === (options.publicKeyPem === undefined)) {
    throw invalid("csr", "give exactly one of csrPem or publicKeyPem");
  }
  const ca = readCa(options.caKeyPem, options.caCertPem);
  const now = new Date();
  if (ca.cert.validity.notAfter <= now) {
    throw new NetservaError(
      "failed_precondition",
      `CA certificate expired at ${ca.cert.validity.notAfter.toISOString()}: rotate the CA`,
    );
  }
  const publicKey =
    options.csrPem !== undefined
      ? readCsr(options.csrPem).publicKey
      : toForgePublicKey(readPublicKey(options.publicKeyPem ?? "", "publicKeyPem"));
  const validity = computeValidity({ validSeconds: options.validSeconds, notBefore: options.notBefore, now });
  if (validity.notAfter > ca.cert.validity.notAfter) validity.notAfter = ca.cert.validity.notAfter;
  if (validity.notAfter <= validity.notBefore) throw invalid("notBefore", "must be before the CA certificate expires");
  const serialHex = randomSerialHex();
  const cert = buildLeafCertificate({
    publicKey,
    issuer: ca.cert.subject.attributes,
    role: options.role,
    identity: options.identity,
    dnsNames: options.dnsNames ?? [],
    ipAddresses: options.ipAddresses ?? [],
    serialHex,
    ...validity,
    authorityKeyId: ca.subjectKeyId,
  });
  return { certPem: signCertificate(cert, ca.key), serialHex, ...validity };
}
