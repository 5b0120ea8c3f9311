// What a vnode (or the controller) does before it has a certificate: make its own key, which
// never leaves the machine, and a CSR for the CA. Also self-signed certificates with a role,
// so tests can show that a certificate the CA did not sign is refused.
import forge from "node-forge";
import { signCertificate, signCsr } from "./forge-sign.ts";
import { buildLeafCertificate } from "./leaf.ts";
import { generateRsaKeyPem, LEAF_RSA_BITS, readPrivateKey, toForgePublicKey } from "./rsa.ts";
import { checkCommonName } from "./roles.ts";
import type { PkiRole } from "./roles.ts";
import { randomSerialHex } from "./serial.ts";
import { computeValidity } from "./validity.ts";

export interface KeyAndCsrOptions {
  /** The name the requester asks for (1-64 printable ASCII); the CA ignores it. */
  commonName: string;
  /** Reuse an existing key (PEM) instead of generating one, e.g. to keep tests fast. */
  keyPem?: string;
  keyBits?: number;
}

export interface KeyAndCsr {
  keyPem: string;
  csrPem: string;
}

export async function createKeyAndCsr(options: KeyAndCsrOptions): Promise<KeyAndCsr> {
  const commonName = checkCommonName(options.commonName);
  const keyPem = options.keyPem ?? (await generateRsaKeyPem(options.keyBits ?? LEAF_RSA_BITS));
  const key = readPrivateKey(keyPem, "keyPem");
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = toForgePublicKey(key);
  csr.setSubject([{ shortName: "CN", value: commonName }]);
  return { keyPem, csrPem: signCsr(csr, key) };
}

export interface SelfSignedOptions {
  role: PkiRole;
  identity: string;
  /** Subject and issuer CN; defaults to the identity. */
  commonName?: string;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  validSeconds?: number;
  keyPem?: string;
}

export interface SelfSigned {
  keyPem: string;
  certPem: string;
}

/** A certificate shaped like a CA-issued one but signed by its own key: for refusal tests. */
export async function createSelfSigned(options: SelfSignedOptions): Promise<SelfSigned> {
  const keyPem = options.keyPem ?? (await generateRsaKeyPem(LEAF_RSA_BITS));
  const key = readPrivateKey(keyPem, "keyPem");
  const commonName = options.commonName ?? options.identity;
  const cert = buildLeafCertificate({
    publicKey: toForgePublicKey(key),
    issuer: [
      { shortName: "CN", value: commonName },
      { shortName: "OU", value: options.role },
    ],
    role: options.role,
    identity: options.identity,
    commonName,
    dnsNames: options.dnsNames ?? [],
    ipAddresses: options.ipAddresses ?? [],
    serialHex: randomSerialHex(),
    ...computeValidity({ validSeconds: options.validSeconds ?? 86_400 }),
  });
  return { keyPem, certPem: signCertificate(cert, key) };
}
