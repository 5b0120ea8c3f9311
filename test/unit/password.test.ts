// Passwords: the generator (CSPRNG, alphabet, length), SHA512-CRYPT against the known-answer
// vectors of Drepper's specification, and both schemes verified by Dovecot itself (`doveadm pw -t`).
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import {
  generatePassword,
  hashPassword,
  hashScheme,
  normalizeHash,
  parseSha512Settings,
  PASSWORD_ALPHABET,
  sha512Crypt,
  sha512CryptInTurns,
  verifyPassword,
} from "../../common/password/index.ts";

const exec = promisify(execFile);

/** Dovecot's verdict on `hash` for `password`: exit 0 verified, non-zero mismatch. */
async function doveadmVerifies(hash: string, password: string): Promise<boolean> {
  try {
    await exec("doveadm", ["-O", "pw", "-t", hash, "-p", password]);
    return true;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== "number") throw error; // doveadm missing: a broken test machine, not a mismatch
    return false;
  }
}

// From "Unix crypt using SHA-256 and SHA-512" (Drepper), the SHA-512 test vectors.
const vectors: Array<[setting: string, password: string, expected: string]> = [
  [
    "$6$saltstring",
    "Hello world!",
    "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
  ],
  [
    "$6$rounds=10000$saltstringsaltstring",
    "Hello world!",
    "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
  ],
  [
    "$6$rounds=5000$toolongsaltstring",
    "This is just a test",
    "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0",
  ],
  [
    "$6$rounds=1400$anotherlongsaltstring",
    "a very much longer text to encrypt.  This one even stretches over morethan one line.",
    "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1",
  ],
  [
    "$6$rounds=77777$short",
    "we have a short salt string but not a short password",
    "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0",
  ],
  [
    "$6$rounds=123456$asaltof16chars..",
    "a short string",
    "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1",
  ],
  [
    "$6$rounds=10$roundstoolow",
    "the minimum number is still observed",
    "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.",
  ],
];

describe("generatePassword", () => {
  it("is 20 characters by default, from the alphabet without look-alikes", () => {
    const pw = generatePassword();
    expect(pw).toHaveLength(20);
    expect([...pw].every((ch) => PASSWORD_ALPHABET.includes(ch))).toBe(true);
    expect(PASSWORD_ALPHABET).not.toMatch(/[0O1lI]/);
    expect(generatePassword(32)).toHaveLength(32);
  });

  it("refuses lengths under 16", () => {
    expect(() => generatePassword(15)).toThrow(RangeError);
    expect(() => generatePassword(Number.NaN)).toThrow(RangeError);
  });

  it("draws every symbol, roughly evenly (no modulo bias, no stuck generator)", () => {
    const counts = new Map<string, number>();
    const draws = 2000;
    for (let i = 0; i < draws; i++) for (const ch of generatePassword(20)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(PASSWORD_ALPHABET.length);
    const expected = (draws * 20) / PASSWORD_ALPHABET.length; // ~727
    for (const n of counts.values()) expect(Math.abs(n - expected)).toBeLessThan(expected * 0.25);
    const seen = new Set(Array.from({ length: 1000 }, () => generatePassword()));
    expect(seen.size).toBe(1000);
  });
});

describe("SHA512-CRYPT", () => {
  it.each(vectors)("known answer for %s", (setting, password, expected) => {
    const settings = parseSha512Settings(setting);
    expect(settings).toBeDefined();
    if (settings) expect(sha512Crypt(password, settings)).toBe(expected);
  });

  it.each(vectors)("known answer in turns for %s", async (setting, password, expected) => {
    const settings = parseSha512Settings(setting);
    expect(settings).toBeDefined();
    if (settings) expect(await sha512CryptInTurns(password, settings)).toBe(expected);
  });

  // The async form runs the rounds on WebAssembly, the sync one on node:crypto: the same answer
  // for every length of password and salt around SHA-512's block boundaries (a round's input
  // crosses from one block to two at 112 bytes), multi-byte UTF-8 and a non-default round count.
  it("in turns (WebAssembly rounds) equals the node:crypto form across lengths", async () => {
    let compared = 0;
    for (const saltLength of [0, 1, 8, 16]) {
      for (let n = 0; n <= 80; n += 3) {
        const settings = parseSha512Settings(`$6$rounds=1000$${"s".repeat(saltLength)}`);
        if (!settings) throw new Error("unparsed");
        const password = "pä".repeat(n).slice(0, n);
        expect(await sha512CryptInTurns(password, settings)).toBe(sha512Crypt(password, settings));
        compared++;
      }
    }
    expect(compared).toBe(4 * 27);
  });

  // The WebAssembly rounds hold P (the password's length in bytes) up to 4,096 bytes: the longest
  // password checkPasswordInput lets through (1,024 characters of 4 UTF-8 bytes) fits exactly;
  // anything longer (verifyPassword sees what it is given) takes the node:crypto rounds.
  it("in turns equals the node:crypto form for long passwords, at and past the module's room", async () => {
    const settings = parseSha512Settings("$6$rounds=1000$longpasswords");
    if (!settings) throw new Error("unparsed");
    for (const password of ["x".repeat(1000), "😀".repeat(1024), "😀".repeat(1025), "é".repeat(3000)])
      expect(await sha512CryptInTurns(password, settings)).toBe(sha512Crypt(password, settings));
  });

  it("hashes running in turns at the same time do not mix (one shared WebAssembly SHA-512)", async () => {
    const both = await Promise.all(
      vectors.slice(0, 4).map(([setting, password]) => {
        const settings = parseSha512Settings(setting);
        if (!settings) throw new Error("unparsed");
        return sha512CryptInTurns(password, settings);
      }),
    );
    expect(both).toEqual(vectors.slice(0, 4).map((v) => v[2]));
  });

  it("hashes a default-cost password in one turn, a costlier one in turns of 5,000 rounds", async () => {
    const countTurns = async (setting: string): Promise<{ hash: string; turns: number; sync: string }> => {
      const settings = parseSha512Settings(setting);
      if (!settings) throw new Error("unparsed");
      let turns = 0;
      let done = false;
      const tick = (): void => {
        turns++;
        if (!done) setImmediate(tick);
      };
      setImmediate(tick);
      const hash = await sha512CryptInTurns("Hello world!", settings);
      done = true;
      return { hash, turns, sync: sha512Crypt("Hello world!", settings) };
    };
    // Default cost: one slice (the turn taken to get the WebAssembly module aside).
    const cheap = await countTurns("$6$saltstring");
    expect(cheap.hash).toBe(vectors[0]?.[2]);
    expect(cheap.turns).toBeLessThanOrEqual(2);
    // rounds=50000 (the most a stored hash may ask): ten slices, other callbacks ran between them.
    const costly = await countTurns("$6$rounds=50000$saltstring");
    expect(costly.hash).toBe(costly.sync);
    expect(costly.turns).toBeGreaterThanOrEqual(9);
  });

  it("hashes with Dovecot's prefix, a 16-character salt and 5000 rounds", async () => {
    const hash = await hashPassword("correct horse battery");
    expect(hash).toMatch(/^\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
    expect(await hashPassword("correct horse battery")).not.toBe(hash); // fresh salt each time
    expect(await verifyPassword("correct horse battery", hash)).toBe(true);
    expect(await verifyPassword("correct horse batterY", hash)).toBe(false);
  });

  it("verifies the specification's vectors with and without the scheme prefix", async () => {
    for (const [, password, expected] of vectors.slice(0, 3)) {
      expect(await verifyPassword(password, expected)).toBe(true);
      expect(await verifyPassword(password, `{SHA512-CRYPT}${expected}`)).toBe(true);
      expect(await verifyPassword(`${password}x`, expected)).toBe(false);
    }
  });
});

describe("ARGON2ID", () => {
  it("hashes in Dovecot's PHC format and verifies", async () => {
    const hash = await hashPassword("correct horse battery", "ARGON2ID");
    expect(hash).toMatch(/^\{ARGON2ID\}\$argon2id\$v=19\$m=65536,t=3,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await verifyPassword("correct horse battery", hash)).toBe(true);
    expect(await verifyPassword("wrong horse battery", hash)).toBe(false);
  });
});

describe("hash recognition", () => {
  it("knows what it stores and refuses the rest", () => {
    expect(hashScheme(vectors[0]?.[2] ?? "")).toBe("SHA512-CRYPT");
    expect(normalizeHash(vectors[0]?.[2] ?? "")).toBe(`{SHA512-CRYPT}${vectors[0]?.[2] ?? ""}`);
    for (const bad of [
      "",
      "secret",
      "{PLAIN}secret",
      "{SHA512-CRYPT}$6$x$short",
      "$1$abc$def",
      "{ARGON2ID}$argon2id$v=19$m=99999999,t=3,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ]) {
      expect(hashScheme(bad)).toBeUndefined();
    }
  });
});

describe("Dovecot verifies what we store (doveadm pw -t)", () => {
  it.each(["SHA512-CRYPT", "ARGON2ID"] as const)("%s: right password verified, wrong one refused", async (scheme) => {
    const password = generatePassword();
    const hash = await hashPassword(password, scheme);
    expect(await doveadmVerifies(hash, password)).toBe(true);
    expect(await doveadmVerifies(hash, `${password}!`)).toBe(false);
  });

  it("a password with non-ASCII and shell characters round-trips through Dovecot", async () => {
    const password = "pässwörd $(id) `x` ' \" ; 日本";
    const hash = await hashPassword(password);
    expect(await doveadmVerifies(hash, password)).toBe(true);
    expect(await verifyPassword(password, hash)).toBe(true);
  });

  it("and we verify what Dovecot writes", async () => {
    for (const scheme of ["SHA512-CRYPT", "ARGON2ID"]) {
      const { stdout } = await exec("doveadm", ["-O", "pw", "-s", scheme, "-p", "from dovecot"]);
      const hash = stdout.trim();
      expect(hashScheme(hash)).toBe(scheme);
      expect(await verifyPassword("from dovecot", hash)).toBe(true);
      expect(await verifyPassword("from dovecoT", hash)).toBe(false);
    }
  });
});
