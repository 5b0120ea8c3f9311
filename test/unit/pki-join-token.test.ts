// Join tokens: what the operator copies must parse back exactly, anything else must be refused
// with field "token" and without echoing the secret, and only a hash of the secret is kept.
import { describe, expect, it } from "vitest";
import { NetservaError } from "../../common/errors.ts";
import {
  createJoinToken,
  formatJoinToken,
  hashTokenSecret,
  parseJoinToken,
  parseTokenCredential,
  verifyTokenSecret,
} from "../../common/pki/join-token.ts";

const PIN = `sha256:${"ab12".repeat(16)}`;

function refusedField(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(NetservaError);
    expect((error as NetservaError).code).toBe("invalid_argument");
    return (error as NetservaError).field;
  }
  return "accepted";
}

describe("join tokens", () => {
  it("creates <id>.<secret> from [a-z0-9], different every time", () => {
    const tokens = Array.from({ length: 200 }, createJoinToken);
    for (const { id, secret, token } of tokens) {
      expect(id).toMatch(/^[a-z0-9]{6}$/);
      expect(secret).toMatch(/^[a-z0-9]{16}$/);
      expect(token).toBe(`${id}.${secret}`);
      expect(parseTokenCredential(token)).toEqual({ id, secret });
    }
    expect(new Set(tokens.map((t) => t.secret)).size).toBe(tokens.length);
    // Every character of the alphabet shows up: the draw covers it (no truncated range).
    const seen = new Set(tokens.flatMap((t) => [...t.id, ...t.secret]));
    expect(seen.size).toBe(36);
  });

  it("formats and parses the join string as a round trip", () => {
    const { id, secret } = createJoinToken();
    const text = formatJoinToken({ id, secret, caPin: PIN });
    expect(text).toBe(`nsm1.${id}.${secret}.${PIN.slice(7)}`);
    expect(parseJoinToken(text)).toEqual({ id, secret, caPin: PIN });
    expect(parseJoinToken(`  ${text}\n`)).toEqual({ id, secret, caPin: PIN }); // pasted with whitespace
    expect(
      parseJoinToken(text.toUpperCase().replace(/^NSM1\.[A-Z0-9]+\.[A-Z0-9]+/, `nsm1.${id}.${secret}`)).caPin,
    ).toBe(PIN);
  });

  it("refuses malformed join strings with field 'token', never echoing the secret", () => {
    const good = formatJoinToken({ id: "abc123", secret: "0123456789abcdef", caPin: PIN });
    const hex = PIN.slice(7);
    const bad = [
      "",
      "   ",
      "nsm1",
      "abc123.0123456789abcdef", // short form where the join string is expected
      `nsm2.abc123.0123456789abcdef.${hex}`, // unknown version
      `NSM1.abc123.0123456789abcdef.${hex}`,
      `nsm1.abc12.0123456789abcdef.${hex}`, // id too short
      `nsm1.abc1234.0123456789abcdef.${hex}`, // id too long
      `nsm1.ABC123.0123456789abcdef.${hex}`, // upper case id
      `nsm1.abc123.0123456789abcde.${hex}`, // secret too short
      `nsm1.abc123.0123456789abcdeF.${hex}`, // upper case in secret
      `nsm1.abc123.0123456789abcd-f.${hex}`, // punctuation in secret
      `nsm1.abc123.0123456789abcdef.${hex.slice(1)}`, // pin too short
      `nsm1.abc123.0123456789abcdef.${hex.slice(1)}g`, // pin not hex
      `nsm1.abc123.0123456789abcdef`, // no pin
      `nsm1.abc123.0123456789abcdef.sha256:${hex}`, // pin with its prefix inside
      `${good}.extra`,
      `nsm1.abc123..0123456789abcdef.${hex}`,
      `nsm1.abc123.0123456789abcdef ${hex}`,
      `nsm1.abc123.${"a".repeat(300)}.${hex}`, // too long
    ];
    for (const text of bad) {
      expect(
        refusedField(() => parseJoinToken(text)),
        JSON.stringify(text),
      ).toBe("token");
      try {
        parseJoinToken(text);
      } catch (error) {
        expect((error as Error).message).not.toContain("0123456789abcd");
      }
    }
    expect(refusedField(() => parseJoinToken(42 as unknown as string))).toBe("token");
    for (const text of ["", "abc123", "abc123.short", `abc123.0123456789abcdef.x`, "abc123:0123456789abcdef"]) {
      expect(
        refusedField(() => parseTokenCredential(text)),
        text,
      ).toBe("token");
    }
  });

  it("refuses to format a join string from bad parts", () => {
    expect(refusedField(() => formatJoinToken({ id: "abc", secret: "0123456789abcdef", caPin: PIN }))).toBe("token");
    expect(refusedField(() => formatJoinToken({ id: "abc123", secret: "0123456789abcdef", caPin: "sha256:00" }))).toBe(
      "caPin",
    );
  });

  it("stores only a SHA-256 of the secret and checks it in constant time", () => {
    const { secret } = createJoinToken();
    const hash = hashTokenSecret(secret);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hash).not.toContain(secret);
    expect(verifyTokenSecret(secret, hash)).toBe(true);
    expect(verifyTokenSecret(secret, hash.toUpperCase())).toBe(true);
    expect(verifyTokenSecret(`${secret}x`, hash)).toBe(false);
    expect(verifyTokenSecret(createJoinToken().secret, hash)).toBe(false);
    expect(verifyTokenSecret(secret, "")).toBe(false);
    expect(verifyTokenSecret(secret, hash.slice(2))).toBe(false);
    expect(verifyTokenSecret(secret, "z".repeat(64))).toBe(false);
  });
});
