// The one form a password hash is stored and sent in: always with its {SCHEME} prefix, so
// Dovecot's default_pass_scheme never has to guess. The agent accepts exactly these forms before
// it writes a lookup row; adoption turns what an existing vnode stored into one of them without
// re-hashing anything: a bare crypt string gets the scheme its crypt id names ("$6$…" →
// "{SHA512-CRYPT}$6$…", "$1$…" → "{MD5-CRYPT}$1$…", DES → "{CRYPT}…"), exactly what Dovecot
// does with it (every CRYPT scheme hands the string to crypt(3)).
import { storedScheme } from "./stored-scheme.ts";

// Crypt-style hashes; no whitespace, quotes or control characters.
const CRYPT_FORM = /^\{(SHA512-CRYPT|SHA256-CRYPT|BLF-CRYPT|MD5-CRYPT|ARGON2ID|ARGON2I)\}\$[A-Za-z0-9./$=,+-]{8,400}$/;
const DES_FORM = /^\{CRYPT\}[./0-9A-Za-z]{13}$/;
// The digest schemes older vnodes used (hex or base64).
const DIGEST_FORM = /^\{(PLAIN-MD5|LDAP-MD5|SMD5|SHA|SSHA|SHA256|SSHA256|SHA512|SSHA512)\}[A-Za-z0-9+/=]{16,400}$/;
// {PLAIN}: clear text, imported so nobody is locked out and flagged weak; printable ASCII only.
const PLAIN_FORM = /^\{PLAIN\}[\x21-\x7e]{1,400}$/;

/** Whether `hash` is in a stored form the agent writes into its lookup rows. */
export function isStoredHashForm(hash: string): boolean {
  return [CRYPT_FORM, DES_FORM, DIGEST_FORM, PLAIN_FORM].some((re) => re.test(hash));
}

/**
 * An existing vnode's stored hash in our stored form (prefix added or made canonical, the hash
 * itself untouched); undefined when Dovecot would not verify it or we do not store that form.
 */
export function adoptedHashForm(hash: string): string | undefined {
  const { scheme } = storedScheme(hash);
  if (scheme === "UNKNOWN") return undefined;
  const prefixed = /^\{([A-Za-z0-9.-]{1,32})\}(.*)$/s.exec(hash);
  const body = prefixed ? (prefixed[2] ?? "") : hash;
  const form = scheme === "DES-CRYPT" ? `{CRYPT}${body}` : `{${scheme}}${body}`;
  return isStoredHashForm(form) ? form : undefined;
}
