// The CA key sealed for the database (controller/pki/ca-seal.ts): it opens with the KEK it was
// sealed under and for the CA it was sealed for, and nothing else; a wrong or malformed KEK is
// refused naming where it came from.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { openCaKey, openCaKeyWith, readKek, readKekFile, sealCaKey } from "../../controller/pki/ca-seal.ts";

const KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
const kekOf = (source = "NETSERVA_CA_KEK") => ({ key: randomBytes(32), source, field: source.split("=")[0] ?? source });

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

  it("opens with the previous KEK during a change-over, says which opened it, and names both when neither does", () => {
    const old = kekOf("NETSERVA_CA_KEK_PREVIOUS_FILE=/etc/old.kek");
    const next = kekOf("NETSERVA_CA_KEK_FILE=/etc/new.kek");
    const ring = { ...next, previous: old };
    const underOld = sealCaKey(old, KEY_PEM, "sha256:aa");
    expect(openCaKeyWith(ring, underOld, "sha256:aa")).toEqual({ keyPem: KEY_PEM, by: old });
    expect(openCaKeyWith(ring, sealCaKey(next, KEY_PEM, "sha256:aa"), "sha256:aa").by).toBe(ring);
    // The old KEK alone, once the rows are re-sealed under the new one: refused, naming its variable.
    expect(() => openCaKey(old, sealCaKey(next, KEY_PEM, "sha256:aa"), "sha256:aa")).toThrow(
      expect.objectContaining({
        field: "NETSERVA_CA_KEK_PREVIOUS_FILE",
        message: expect.stringMatching(/does not open the CA key sealed in the database .*ca rekey/),
      }),
    );
    const stranger = { ...kekOf("NETSERVA_CA_KEK_FILE=/etc/x.kek"), previous: kekOf("NETSERVA_CA_KEK_PREVIOUS") };
    expect(() => openCaKey(stranger, underOld, "sha256:aa")).toThrow(
      /NETSERVA_CA_KEK_FILE=\/etc\/x.kek \(nor NETSERVA_CA_KEK_PREVIOUS\) does not open/,
    );
  });

  it("reads the previous KEK only next to a current one, and a --new-kek-file by its option's name", () => {
    const dir = mkdtempSync(join(tmpdir(), "nsm-kek-unit-"));
    try {
      const [a, b] = [randomBytes(32), randomBytes(32)];
      const fa = join(dir, "a");
      const fb = join(dir, "b");
      writeFileSync(fa, a.toString("base64"));
      writeFileSync(fb, b.toString("base64"));
      const ring = readKek({ NETSERVA_CA_KEK_FILE: fb, NETSERVA_CA_KEK_PREVIOUS_FILE: fa });
      expect(ring?.key.equals(b)).toBe(true);
      expect(ring?.previous?.key.equals(a)).toBe(true);
      expect(ring?.previous?.source).toBe(`NETSERVA_CA_KEK_PREVIOUS_FILE=${fa}`);
      expect(
        readKek({ NETSERVA_CA_KEK_FILE: fb, NETSERVA_CA_KEK_PREVIOUS: a.toString("base64") })?.previous?.field,
      ).toBe("NETSERVA_CA_KEK_PREVIOUS");
      // The same key twice is one key.
      expect(readKek({ NETSERVA_CA_KEK_FILE: fb, NETSERVA_CA_KEK_PREVIOUS_FILE: fb })?.previous).toBeUndefined();
      expect(() => readKek({ NETSERVA_CA_KEK_PREVIOUS_FILE: fa })).toThrow(
        expect.objectContaining({
          field: "NETSERVA_CA_KEK_FILE",
          message: expect.stringMatching(/only accepted next to/),
        }),
      );
      expect(() => readKek({ NETSERVA_CA_KEK_FILE: fb, NETSERVA_CA_KEK_PREVIOUS_FILE: join(dir, "absent") })).toThrow(
        expect.objectContaining({ field: "NETSERVA_CA_KEK_PREVIOUS_FILE", message: expect.stringMatching(/ENOENT/) }),
      );
      writeFileSync(join(dir, "short"), randomBytes(16).toString("base64"));
      expect(() => readKekFile(join(dir, "short"), "--new-kek-file")).toThrow(
        expect.objectContaining({ field: "--new-kek-file", message: expect.stringMatching(/must be 32 bytes/) }),
      );
      expect(readKekFile(fa, "--new-kek-file").key.equals(a)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
