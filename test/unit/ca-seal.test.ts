// The CA key sealed for the database (controller/pki/ca-seal.ts): it opens with the KEK it was
// sealed under and for the CA it was sealed for, and nothing else; a wrong or malformed KEK is
// refused naming where it came from.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openCaKey, readKek, sealCaKey } from "../../controller/pki/ca-seal.ts";

const KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
const kekOf = (source = "NETSERVA_CA_KEK") => ({ key: randomBytes(32), source });

describe("the sealed CA key", () => {
  it("opens with its KEK and pin, and is not the key in clear", () => {
    const kek = kekOf();
    const sealed = sealCaKey(kek, KEY_PEM, "sha256:aa");
    expect(sealed).toMatch(/^nsm-sealed-v1:/);
    expect(sealed).not.toContain("PRIVATE KEY");
    expect(sealCaKey(kek, KEY_PEM, "sha256:aa")).not.toBe(sealed); // a fresh IV each time
    expect(openCaKey(kek, sealed, "sha256:aa")).toBe(KEY_PEM);
  });

  it("refuses another KEK, naming it, and a sealed key moved to another CA's row", () => {
    const sealed = sealCaKey(kekOf(), KEY_PEM, "sha256:aa");
    expect(() => openCaKey(kekOf("NETSERVA_CA_KEK_FILE=/etc/kek"), sealed, "sha256:aa")).toThrow(
      /NETSERVA_CA_KEK_FILE=\/etc\/kek does not open the CA key sealed in the database \(CA sha256:aa\)/,
    );
    const kek = kekOf();
    expect(() => openCaKey(kek, sealCaKey(kek, KEY_PEM, "sha256:aa"), "sha256:bb")).toThrow(/does not open/);
    expect(() => openCaKey(kek, "plain text", "sha256:aa")).toThrow(/not in a format this version reads/);
  });

  it("reads the KEK from a file or the environment, and refuses a malformed one by name", () => {
    const dir = mkdtempSync(join(tmpdir(), "nsm-kek-unit-"));
    try {
      const key = randomBytes(32);
      const file = join(dir, "kek");
      writeFileSync(file, key.toString("base64") + "\n");
      expect(readKek({ NETSERVA_CA_KEK_FILE: file })?.key.equals(key)).toBe(true);
      expect(readKek({ NETSERVA_CA_KEK: key.toString("base64") })?.source).toBe("NETSERVA_CA_KEK");
      expect(readKek({})).toBeUndefined();
      expect(() => readKek({ NETSERVA_CA_KEK: randomBytes(16).toString("base64") })).toThrow(
        expect.objectContaining({ field: "NETSERVA_CA_KEK", message: expect.stringMatching(/must be 32 bytes/) }),
      );
      expect(() => readKek({ NETSERVA_CA_KEK_FILE: join(dir, "absent") })).toThrow(
        expect.objectContaining({ field: "NETSERVA_CA_KEK_FILE", message: expect.stringMatching(/ENOENT/) }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
