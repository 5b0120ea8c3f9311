// Certificate requests an attacker would send: a key of any size and exponent with a signature
// of junk (a CA that checks the key first never gets to the signature), and keys of other types.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import forge from "node-forge";

/** A CSR whose RSA modulus has `bits` bits and whose exponent is `exponentHex`; the signature is junk. */
export function junkRsaCsr(bits: number, exponentHex = "10001"): string {
  const modulus = randomBytes(bits / 8);
  modulus[0] = (modulus[0] ?? 0) | 0x80;
  modulus[modulus.length - 1] = (modulus[modulus.length - 1] ?? 0) | 1;
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.setRsaPublicKey(
    new forge.jsbn.BigInteger(modulus.toString("hex"), 16),
    new forge.jsbn.BigInteger(exponentHex, 16),
  );
  csr.setSubject([{ shortName: "CN", value: "mx1" }]);
  csr.signatureOid = forge.pki.oids["sha256WithRSAEncryption"] ?? "1.2.840.113549.1.1.11";
  csr.signature = randomBytes(bits / 8).toString("binary");
  return forge.pki.certificationRequestToPem(csr);
}

/** A properly self-signed CSR with an EC (P-256) or Ed25519 key, made by openssl. */
export function opensslCsr(kind: "ec" | "ed25519"): string {
  const keyArgs = kind === "ec" ? ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] : ["-newkey", "ed25519"];
  return execFileSync("openssl", ["req", "-new", ...keyArgs, "-nodes", "-keyout", "/dev/null", "-subj", "/CN=mx1"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
}
