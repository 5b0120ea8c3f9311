// Certificate requests: the key is checked (RSA, 2048-4096 bits, e = 65537) before any signature
// work, and the signature is verified by OpenSSL. Counted in signature operations, not in time.
import { describe, expect, it } from "vitest";
import { NetservaError } from "../../common/errors.ts";
import { readCsr } from "../../common/pki/csr.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { generateRsaKeyPem } from "../../common/pki/rsa.ts";
import { signatureOperations } from "../../common/pki/signature-count.ts";
import { junkRsaCsr, opensslCsr } from "../helpers/hostile-csr.ts";

function refusal(pem: string): { error: NetservaError; verifies: number } {
  const before = signatureOperations.verify;
  try {
    readCsr(pem);
  } catch (error) {
    if (!(error instanceof NetservaError)) throw error;
    return { error, verifies: signatureOperations.verify - before };
  }
  throw new Error("accepted");
}

describe("readCsr", () => {
  it("accepts a self-signed RSA request of 2048 and 4096 bits with one verification each", async () => {
    for (const bits of [2048, 4096]) {
      const { csrPem } = await createKeyAndCsr({ commonName: "mx1", keyPem: await generateRsaKeyPem(bits) });
      const before = signatureOperations.verify;
      const csr = readCsr(csrPem);
      expect(signatureOperations.verify - before).toBe(1);
      expect(csr.key.asymmetricKeyDetails?.modulusLength).toBe(bits);
    }
  });

  it("refuses a 16,384-bit request without any signature operation", () => {
    const { error, verifies } = refusal(junkRsaCsr(16_384));
    expect(verifies).toBe(0);
    expect(error.field).toBe("csr");
    expect(error.message).toMatch(/2048 to 4096 bits, not 16384/);
  });

  it("refuses 1024 and 8192 bits, and any exponent but 65537, without any signature operation", () => {
    for (const pem of [junkRsaCsr(1024), junkRsaCsr(8192), junkRsaCsr(2048, "3"), junkRsaCsr(2048, "f".repeat(512))]) {
      const { error, verifies } = refusal(pem);
      expect(verifies).toBe(0);
      expect(error.field).toBe("csr");
    }
    expect(refusal(junkRsaCsr(2048, "3")).error.message).toMatch(/exponent must be 65537/);
  });

  it("refuses EC and Ed25519 keys naming the field, without any signature operation", () => {
    for (const kind of ["ec", "ed25519"] as const) {
      const { error, verifies } = refusal(opensslCsr(kind));
      expect(verifies).toBe(0);
      expect(error.message).toMatch(/^csr: public key must be RSA, not (ec|ed25519)/);
    }
  });

  it("refuses a junk signature on an acceptable key after exactly one verification", () => {
    const { error, verifies } = refusal(junkRsaCsr(2048));
    expect(verifies).toBe(1);
    expect(error.message).toMatch(/signature does not verify/);
  });

  it("refuses malformed DER without any signature operation", () => {
    const wrap = (b64: string): string =>
      `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
    for (const pem of [
      wrap("MIIB"),
      wrap("AAAA"),
      wrap(Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).toString("base64")),
      "x".repeat(20_000),
    ]) {
      const { error, verifies } = refusal(pem);
      expect(verifies).toBe(0);
      expect(error.field).toBe("csr");
    }
  });
});
