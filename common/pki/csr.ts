// Certificate signing requests are untrusted input. The CA takes from one only its public key,
// and only after the self-signature proves the requester holds the matching private key; the
// subject, SANs and extensions it asks for are ignored.
//
// The order matters: a request is a cheap way to make the CA do expensive arithmetic (a 16,384-bit
// modulus, or a huge public exponent, kept a pure-JavaScript verifier busy for minutes). So the
// DER is split by hand, the key's type, size and exponent are checked from the parsed key
// (OpenSSL, no arithmetic), and only then is the signature verified, by OpenSSL through
// node:crypto. Every verification is counted (signature-count.ts).
import { createPublicKey, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import forge from "node-forge";
import { invalid } from "../errors.ts";
import { toForgePublicKey } from "./rsa.ts";
import { signatureOperations } from "./signature-count.ts";

/** The keys the CA signs: RSA from 2048 to 4096 bits with e = 65537. */
export const CSR_MIN_RSA_BITS = 2048;
export const CSR_MAX_RSA_BITS = 4096;
const RSA_EXPONENT = 65537n;
const MAX_CSR_CHARS = 16_384;

// PKCS#1 v1.5 with a SHA-2 hash (DER of the OID's content); MD5/SHA-1 signatures and PSS are refused.
const SIGNATURE_HASHES = new Map<string, string>([
  ["1.2.840.113549.1.1.11", "sha256"],
  ["1.2.840.113549.1.1.12", "sha384"],
  ["1.2.840.113549.1.1.13", "sha512"],
]);

export interface VerifiedCsr {
  /** The requester's key, checked and proven. */
  key: KeyObject;
  publicKey: forge.pki.rsa.PublicKey;
}

interface Tlv {
  tag: number;
  /** Offset of the whole element (tag byte) and of its content, and where it ends. */
  start: number;
  content: number;
  end: number;
}

/** One DER element at `offset` (definite lengths only, at most 4 length bytes). */
function readTlv(der: Buffer, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new Error("truncated");
  const tag = der[offset] ?? 0;
  let length = der[offset + 1] ?? 0;
  let content = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || content + count > limit) throw new Error("bad length");
    length = 0;
    for (let i = 0; i < count; i += 1) length = length * 256 + (der[content + i] ?? 0);
    content += count;
  }
  const end = content + length;
  if (end > limit) throw new Error("truncated");
  return { tag, start: offset, content, end };
}

function children(der: Buffer, parent: Tlv, count: number): Tlv[] {
  const out: Tlv[] = [];
  let offset = parent.content;
  while (out.length < count) {
    const child = readTlv(der, offset, parent.end);
    out.push(child);
    offset = child.end;
  }
  return out;
}

const SEQUENCE = 0x30;
const BIT_STRING = 0x03;
const OID = 0x06;

interface CsrParts {
  info: Buffer;
  spki: Buffer;
  algorithmOid: string;
  signature: Buffer;
}

/** certificationRequest ::= SEQUENCE { info SEQUENCE { version, subject, spki, [0] attrs }, alg, sig } */
function splitCsr(der: Buffer): CsrParts {
  const outer = readTlv(der, 0, der.length);
  if (outer.tag !== SEQUENCE || outer.end !== der.length) throw new Error("not a sequence");
  const [info, algorithm, signature] = children(der, outer, 3);
  if (!info || !algorithm || !signature) throw new Error("missing parts");
  if (info.tag !== SEQUENCE || algorithm.tag !== SEQUENCE || signature.tag !== BIT_STRING) throw new Error("shape");
  const spki = children(der, info, 3)[2];
  const oid = children(der, algorithm, 1)[0];
  if (!spki || spki.tag !== SEQUENCE || !oid || oid.tag !== OID) throw new Error("shape");
  // A BIT STRING's first content byte counts unused bits: 0 for a signature.
  if (der[signature.content] !== 0) throw new Error("signature bits");
  return {
    info: der.subarray(info.start, info.end),
    spki: der.subarray(spki.start, spki.end),
    algorithmOid: forge.asn1.derToOid(forge.util.createBuffer(der.subarray(oid.content, oid.end).toString("binary"))),
    signature: der.subarray(signature.content + 1, signature.end),
  };
}

function pemToDer(pem: string): Buffer | undefined {
  const m = /-----BEGIN CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE REQUEST-----/.exec(pem);
  return m?.[1] ? Buffer.from(m[1].replace(/\s+/g, ""), "base64") : undefined;
}

/** The requester's key, refused unless it is one the CA signs; no arithmetic on it yet. */
function checkKey(spki: Buffer, field: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: "der", type: "spki" });
  } catch {
    throw invalid(field, "public key is not a well-formed SubjectPublicKeyInfo");
  }
  if (key.asymmetricKeyType !== "rsa")
    throw invalid(field, `public key must be RSA, not ${key.asymmetricKeyType ?? "unknown"}`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < CSR_MIN_RSA_BITS || bits > CSR_MAX_RSA_BITS)
    throw invalid(field, `RSA key must have ${CSR_MIN_RSA_BITS} to ${CSR_MAX_RSA_BITS} bits, not ${bits}`);
  const exponent = key.asymmetricKeyDetails?.publicExponent;
  if (exponent !== RSA_EXPONENT)
    throw invalid(field, `RSA public exponent must be 65537, not ${exponent === undefined ? "unknown" : "another"}`);
  return key;
}

/** Parses a PEM CSR and verifies its self-signature; refuses anything else as `invalid(field)`. */
export function readCsr(pem: string, field = "csr"): VerifiedCsr {
  const der = typeof pem === "string" && pem.length <= MAX_CSR_CHARS ? pemToDer(pem) : undefined;
  if (!der) throw invalid(field, "must be a PEM certificate signing request (BEGIN CERTIFICATE REQUEST)");
  let parts: CsrParts;
  try {
    parts = splitCsr(der);
  } catch {
    throw invalid(field, "is not a well-formed PKCS#10 request");
  }
  const key = checkKey(parts.spki, field);
  const hash = SIGNATURE_HASHES.get(parts.algorithmOid);
  if (!hash) throw invalid(field, "must be signed with sha256/384/512WithRSAEncryption");
  signatureOperations.verify += 1;
  let verified = false;
  try {
    verified = verify(hash, parts.info, key, parts.signature);
  } catch {
    verified = false;
  }
  if (!verified) throw invalid(field, "signature does not verify: the request was not signed by its own key");
  return { key, publicKey: toForgePublicKey(key) };
}
