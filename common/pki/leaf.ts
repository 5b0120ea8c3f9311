// The one shape of an end-entity certificate, shared by the CA and by the self-signed test
// certificates: subject CN = identity, OU = role; a URI SAN carrying role and identity; usable
// as TLS server and client, since agents and controllers are both.
import { isIP } from "node:net";
import forge from "node-forge";
import { invalid } from "../errors.ts";
import { checkIdentity, checkRole, isIdentityName, roleUri } from "./roles.ts";
import type { PkiRole } from "./roles.ts";

export interface LeafOptions {
  publicKey: forge.pki.rsa.PublicKey;
  issuer: forge.pki.CertificateField[];
  role: PkiRole;
  identity: string;
  /** Subject CN; the identity unless a test needs a certificate whose CN lies. */
  commonName?: string;
  /** Extra DNS SANs, e.g. the name the controller dials the agent by. */
  dnsNames?: readonly string[];
  /** Extra IP SANs (IPv4 or IPv6). */
  ipAddresses?: readonly string[];
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** Binary string of the issuer's subjectKeyIdentifier, written as authorityKeyIdentifier. */
  authorityKeyId?: string;
}

interface AltName {
  type: number;
  value?: string;
  ip?: string;
}

/** Checks and de-duplicates SANs: the agent's own name first, then the extras in order. */
export function leafAltNames(options: Pick<LeafOptions, "role" | "identity" | "dnsNames" | "ipAddresses">): AltName[] {
  const dns = options.role === "agent" ? [options.identity] : [];
  for (const raw of options.dnsNames ?? []) {
    // DNS is case-insensitive: fold, then hold the name to the same rule as identities.
    const name = typeof raw === "string" ? raw.toLowerCase() : raw;
    if (!isIdentityName(name)) throw invalid("dnsNames", "each must be a DNS name (letters, digits, '-', '.')");
    if (!dns.includes(name)) dns.push(name);
  }
  const ips: string[] = [];
  for (const ip of options.ipAddresses ?? []) {
    if (typeof ip !== "string" || isIP(ip) === 0) throw invalid("ipAddresses", "each must be an IPv4 or IPv6 address");
    if (!ips.includes(ip)) ips.push(ip);
  }
  return [
    { type: 6, value: roleUri(options.role, options.identity) },
    ...dns.map((value) => ({ type: 2, value })),
    ...ips.map((ip) => ({ type: 7, ip })),
  ];
}

/** An unsigned end-entity certificate; sign it with forge-sign.ts. */
export function buildLeafCertificate(options: LeafOptions): forge.pki.Certificate {
  const role = checkRole(options.role);
  const identity = checkIdentity(options.identity);
  const cert = forge.pki.createCertificate();
  cert.version = 2; // X.509 v3
  cert.publicKey = options.publicKey;
  cert.serialNumber = options.serialHex;
  cert.validity.notBefore = options.notBefore;
  cert.validity.notAfter = options.notAfter;
  cert.setSubject([
    { shortName: "CN", value: options.commonName ?? identity },
    { shortName: "OU", value: role },
  ]);
  cert.setIssuer(options.issuer);
  const extensions: object[] = [
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    { name: "subjectAltName", altNames: leafAltNames({ ...options, role, identity }) },
    { name: "subjectKeyIdentifier" },
  ];
  if (options.authorityKeyId !== undefined) {
    extensions.push({ name: "authorityKeyIdentifier", keyIdentifier: options.authorityKeyId });
  }
  cert.setExtensions(extensions);
  return cert;
}
