// DKIM key generation with node:crypto. A fresh key is proven before anyone stores it (as
// WildDuck does): a test string is signed with the private key and verified with the public key
// exactly as it will appear in DNS, so a broken key or a wrong DNS encoding never goes live.
import { createPublicKey, generateKeyPairSync, randomBytes, sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { NetservaError, invalid } from "../../common/errors.ts";
import type { DkimKeyType } from "../dns/dkim-txt.ts";

export type DkimAlgorithm = DkimKeyType;

export interface GeneratedDkimKey {
  algorithm: DkimAlgorithm;
  bits: number | null;
  privateKeyPem: string;
  /** The record's p= value: base64 of the DER SubjectPublicKeyInfo (RSA, RFC 6376 §3.6.1) or of
   * the raw 32-byte public key (Ed25519, RFC 8463 §4.2). */
  publicKey: string;
}

export const RSA_BITS = [1024, 2048, 3072, 4096] as const;

export function parseBits(value: string | undefined): number {
  if (value === undefined) return 2048;
  const bits = Number(value);
  if (!/^[0-9]+$/.test(value) || !(RSA_BITS as readonly number[]).includes(bits))
    throw invalid(
      "bits",
      `'${value.slice(0, 12)}' must be one of ${RSA_BITS.join(", ")} (2048 recommended; 1024 only for old DNS hosts)`,
    );
  return bits;
}

/** The public key as the DNS record carries it. */
export function dnsPublicKey(algorithm: DkimAlgorithm, publicKey: KeyObject): string {
  if (algorithm === "rsa") return publicKey.export({ type: "spki", format: "der" }).toString("base64");
  const x = publicKey.export({ format: "jwk" }).x;
  if (x === undefined) throw new NetservaError("internal", "Ed25519 public key has no x");
  return Buffer.from(x, "base64url").toString("base64");
}

/** The public key a verifier rebuilds from the record's p= value. */
export function publicKeyFromDns(algorithm: DkimAlgorithm, p: string): KeyObject {
  const bytes = Buffer.from(p, "base64");
  if (algorithm === "rsa") return createPublicKey({ key: bytes, format: "der", type: "spki" });
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: bytes.toString("base64url") }, format: "jwk" });
}

/** Signs a random test string and verifies it against the DNS form of the public key. */
export function proveDkimKey(key: GeneratedDkimKey): void {
  const data = randomBytes(64);
  const hash = key.algorithm === "rsa" ? "sha256" : null;
  const signature = sign(hash, data, key.privateKeyPem);
  if (!verify(hash, data, publicKeyFromDns(key.algorithm, key.publicKey), signature)) {
    throw new NetservaError(
      "internal",
      `the new ${key.algorithm} DKIM key failed its sign/verify proof; nothing was stored`,
    );
  }
}

export function generateDkimKey(algorithm: DkimAlgorithm, bits = 2048): GeneratedDkimKey {
  const pair =
    algorithm === "rsa"
      ? generateKeyPairSync("rsa", { modulusLength: bits, publicExponent: 0x10001 })
      : generateKeyPairSync("ed25519");
  const key: GeneratedDkimKey = {
    algorithm,
    bits: algorithm === "rsa" ? bits : null,
    privateKeyPem: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKey: dnsPublicKey(algorithm, pair.publicKey),
  };
  proveDkimKey(key);
  return key;
}
