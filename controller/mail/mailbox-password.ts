// The password part of a mailbox add or change: an operator's password, an existing hash
// (migration), or a generated one. Hashing happens here, before any transaction is opened.
import { invalid } from "../../common/errors.ts";
import {
  PASSWORD_SCHEMES,
  generatePassword,
  hashCostProblem,
  hashPassword,
  normalizeHash,
} from "../../common/password/index.ts";
import type { PasswordScheme } from "../../common/password/index.ts";
import { checkPasswordInput } from "../../common/validation/index.ts";

export interface PasswordRequest {
  password?: string | undefined;
  passwordHash?: string | undefined;
  generate: boolean;
  scheme?: string | undefined;
}

export interface PasswordOutcome {
  hash: string;
  /** Set only when generated: shown to the operator once, never stored. */
  generated: string | undefined;
}

export function parseScheme(input: unknown): PasswordScheme {
  if (input === undefined) return "SHA512-CRYPT";
  const scheme = PASSWORD_SCHEMES.find((s) => s === input);
  if (!scheme)
    throw invalid(
      "scheme",
      `${JSON.stringify(String(input)).slice(0, 40)} is not a password scheme; use ${PASSWORD_SCHEMES.join(" or ")}`,
    );
  return scheme;
}

/**
 * undefined when the request names no password at all (a change that keeps the password). The
 * request is checked before this returns (a refusal is thrown, not a rejected promise): a caller
 * may let the hash run on while it goes on (mailbox-add-prepare.ts).
 */
export function resolvePassword(req: PasswordRequest): Promise<PasswordOutcome | undefined> {
  const scheme = parseScheme(req.scheme);
  const given = [req.password !== undefined, req.passwordHash !== undefined, req.generate].filter(Boolean).length;
  if (given > 1) throw invalid("password", "give one of a password, a password hash, or a generated password");
  if (req.passwordHash !== undefined) {
    // The cost first: a well-formed hash with absurd parameters is refused for what it costs.
    const costly = typeof req.passwordHash === "string" ? hashCostProblem(req.passwordHash) : undefined;
    if (costly !== undefined) throw invalid("passwordHash", costly);
    const hash = typeof req.passwordHash === "string" ? normalizeHash(req.passwordHash) : undefined;
    if (hash === undefined)
      throw invalid(
        "passwordHash",
        "not a hash Dovecot verifies as stored: give {SHA512-CRYPT}$6$… (or a bare $6$…) or {ARGON2ID}$argon2id$…",
      );
    return Promise.resolve({ hash, generated: undefined });
  }
  if (req.password !== undefined)
    return hashPassword(checkPasswordInput(req.password, "password"), scheme).then((hash) => ({
      hash,
      generated: undefined,
    }));
  if (!req.generate) return Promise.resolve(undefined);
  const generated = generatePassword();
  return hashPassword(generated, scheme).then((hash) => ({ hash, generated }));
}
