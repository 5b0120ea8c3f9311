// Adoption keeps every hash as stored; the scheme decides only the flag (common/password/stored-scheme.ts).
import { describe, expect, it } from "vitest";
import { storedScheme } from "../../common/password/stored-scheme.ts";

const SHA512 = "$6$saltsalt$" + "a".repeat(86);
describe("storedScheme", () => {
  it.each([
    [`{SHA512-CRYPT}${SHA512}`, "SHA512-CRYPT", false],
    [SHA512, "SHA512-CRYPT", false],
    [`{CRYPT}${SHA512}`, "SHA512-CRYPT", false],
    ["{SHA256-CRYPT}$5$salt$" + "b".repeat(43), "SHA256-CRYPT", false],
    ["{BLF-CRYPT}$2y$05$" + "c".repeat(53), "BLF-CRYPT", false],
    ["$2b$10$" + "c".repeat(53), "BLF-CRYPT", false],
    ["{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA", "ARGON2ID", false],
    ["$1$salt$" + "d".repeat(22), "MD5-CRYPT", true],
    ["{MD5-CRYPT}$1$salt$" + "d".repeat(22), "MD5-CRYPT", true],
    ["{PLAIN}secret", "PLAIN", true],
    ["{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69", "PLAIN-MD5", true],
    ["abcdefghijklm", "DES-CRYPT", true],
    ["{SHA512-CRYPT}$1$mismatch$" + "d".repeat(22), "UNKNOWN", true],
    ["plain words", "UNKNOWN", true],
    ["", "UNKNOWN", true],
  ])("%s → %s (weak %s)", (hash, scheme, weak) => {
    expect(storedScheme(hash)).toEqual({ scheme, weak });
  });
});
