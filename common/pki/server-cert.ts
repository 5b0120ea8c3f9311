// A plain TLS server certificate for the mail daemons (SMTP, IMAP, POP3, ManageSieve). Unlike
// agent and controller certificates it carries no netserva-mail role: its key sits where Postfix
// and Dovecot can read it, so it must never be accepted as a fleet identity.
import forge from "node-forge";
import { invalid } from "../errors.ts";
import { signCertificate } from "./forge-sign.ts";
import { readCa } from "./read-ca.ts";
import { generateRsaKeyPem, readPrivateKey, toForgePublicKey } from "./rsa.ts";
import { isIdentityName } from "./roles.ts";
import { randomSerialHex } from "./serial.ts";
import { computeValidity } from "./validity.ts";
import { createPublicKey } from "node:crypto";

export interface ServerCertificateOptions {
  caKeyPem: string;
  caCertPem: string;
  /** First name is the subject CN; all go in the DNS SANs. */
  dnsNames: readonly string[];
  validSeconds: number;
  /** Reuse a key; otherwise a fresh RSA 2048 key is made. */
  keyPem?: string;
  /** Explicit start instead of now (tests pass a past one to make an already expired certificate). */
  notBefore?: Date;
}

export interface ServerCertificate {
  keyPem: string;
  certPem: string;
  notAfter: Date;
}

export async function issueServerCertificate(options: ServerCertificateOptions): Promise<ServerCertificate> {
  const names = options.dnsNames.map((n) => n.toLowerCase());
  if (names.length === 0 || names.some((n) => !isIdentityName(n)))
    throw invalid("dnsNames", "need one or more DNS names (letters, digits, '-', '.')");
  const keyPem = options.keyPem ?? (await generateRsaKeyPem(2048));
  const key = readPrivateKey(keyPem, "keyPem");
  const ca = readCa(options.caKeyPem, options.caCertPem);
  const validity = computeValidity({
    validSeconds: options.validSeconds,
    notBefore: options.notBefore,
    now: new Date(),
  });
  if (validity.notAfter > ca.cert.validity.notAfter) validity.notAfter = ca.cert.validity.notAfter;
  const cert = forge.pki.createCertificate();
  cert.version = 2;
  cert.publicKey = toForgePublicKey(createPublicKey(key));
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = validity.notBefore;
  cert.validity.notAfter = validity.notAfter;
  cert.setSubject([{ shortName: "CN", value: names[0] as string }]);
  cert.setIssuer(ca.cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    { name: "subjectAltName", altNames: names.map((value) => ({ type: 2, value })) },
    { name: "subjectKeyIdentifier" },
    ...(ca.subjectKeyId !== undefined ? [{ name: "authorityKeyIdentifier", keyIdentifier: ca.subjectKeyId }] : []),
  ]);
  return { keyPem, certPem: signCertificate(cert, ca.key), notAfter: validity.notAfter };
}
