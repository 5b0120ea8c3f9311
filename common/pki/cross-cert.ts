// A CA key rollover's link certificate (RFC 4210's "NewWithOld"): the new CA's name and key,
// signed by the old CA. Sent after the leaf it lets a peer that trusts only the old CA accept a
// certificate from the new one (leaf ← link ← old root), so the controller can present a
// new-CA certificate before every agent has the new trust bundle. The new CA keeps the old one's
// subject name: the link is then self-issued and does not count against the roots' path length
// constraint (pathlen 0), which any other name would break.
import { X509Certificate } from "node:crypto";
import forge from "node-forge";
import { invalid } from "../errors.ts";
import { signCertificate } from "./forge-sign.ts";
import { readCa } from "./read-ca.ts";
import { randomSerialHex } from "./serial.ts";
import { wholeSeconds } from "./validity.ts";

export interface CrossCertificateOptions {
  oldCaKeyPem: string;
  oldCaCertPem: string;
  newCaKeyPem: string;
  newCaCertPem: string;
}

/** The new CA certified by the old one, valid while both are. */
export function createCrossCertificate(options: CrossCertificateOptions): string {
  const oldCa = readCa(options.oldCaKeyPem, options.oldCaCertPem);
  const newCa = readCa(options.newCaKeyPem, options.newCaCertPem);
  if (new X509Certificate(options.oldCaCertPem).subject !== new X509Certificate(options.newCaCertPem).subject)
    throw invalid("newCaCertPem", "must carry the old CA's subject name (a rollover keeps the name)");
  const notAfter = new Date(Math.min(oldCa.cert.validity.notAfter.getTime(), newCa.cert.validity.notAfter.getTime()));
  const notBefore = wholeSeconds(new Date(Math.max(Date.now() - 60_000, newCa.cert.validity.notBefore.getTime())));
  if (notAfter <= notBefore) throw invalid("oldCaCertPem", "has expired: nothing to link");
  const cert = forge.pki.createCertificate();
  cert.version = 2;
  cert.publicKey = newCa.cert.publicKey;
  cert.serialNumber = randomSerialHex();
  cert.validity.notBefore = notBefore;
  cert.validity.notAfter = notAfter;
  cert.setSubject(newCa.cert.subject.attributes);
  cert.setIssuer(oldCa.cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    // The new CA's key id, so a leaf's authorityKeyIdentifier finds this link (and the new
    // root); the old CA's key id, so the link finds the old root and not the new one.
    { name: "subjectKeyIdentifier", subjectKeyIdentifier: forge.util.bytesToHex(newCa.subjectKeyId) },
    { name: "authorityKeyIdentifier", keyIdentifier: oldCa.subjectKeyId },
  ]);
  return signCertificate(cert, oldCa.key);
}
