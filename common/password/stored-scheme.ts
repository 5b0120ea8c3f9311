// What Dovecot would make of a password hash as an existing vnode stores it (adoption): the
// scheme in Dovecot's notation and whether it is weak. A "{SCHEME}" prefix names it; a bare crypt
// string is read by the crypt family (NetServa sets default_pass_scheme = SHA512-CRYPT, and any
// CRYPT scheme hands "$id$…" to crypt(3)), so "$1$…" is MD5-CRYPT whatever the default says.
// Weak schemes are imported so nobody is locked out, but flagged for a forced password change.

export interface StoredScheme {
  /** Dovecot's name: SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, MD5-CRYPT, PLAIN, PLAIN-MD5, … or UNKNOWN. */
  readonly scheme: string;
  readonly weak: boolean;
}

/** Salted, slow schemes worth keeping. Everything else Dovecot verifies is weak. */
const STRONG = new Set([
  "SHA512-CRYPT",
  "SHA256-CRYPT",
  "BLF-CRYPT",
  "ARGON2I",
  "ARGON2ID",
  "PBKDF2",
  "SCRAM-SHA-256",
  "YESCRYPT",
]);

/** crypt(3) ids → Dovecot scheme names. */
const CRYPT_IDS: Record<string, string> = {
  "1": "MD5-CRYPT",
  "5": "SHA256-CRYPT",
  "6": "SHA512-CRYPT",
  "2a": "BLF-CRYPT",
  "2b": "BLF-CRYPT",
  "2y": "BLF-CRYPT",
  y: "YESCRYPT",
  argon2i: "ARGON2I",
  argon2id: "ARGON2ID",
};

function cryptScheme(body: string): string | undefined {
  const id = /^\$([0-9a-z]{1,8})\$/.exec(body)?.[1];
  if (id !== undefined) return CRYPT_IDS[id];
  // Traditional DES crypt: 13 characters of the crypt alphabet.
  if (/^[./0-9A-Za-z]{13}$/.test(body)) return "DES-CRYPT";
  return undefined;
}

export function storedScheme(hash: string): StoredScheme {
  const m = /^\{([A-Za-z0-9.-]{1,32})\}(.*)$/s.exec(hash);
  const prefix = m?.[1]?.toUpperCase();
  const body = m ? (m[2] ?? "") : hash;
  let scheme: string | undefined;
  if (prefix === undefined || prefix === "CRYPT") scheme = cryptScheme(body);
  else if (prefix.endsWith("-CRYPT") || prefix.startsWith("ARGON2"))
    // {SHA512-CRYPT}$6$…: the prefix must agree with the body's crypt id.
    scheme = cryptScheme(body) === prefix ? prefix : undefined;
  else scheme = body === "" && prefix !== "PLAIN" ? undefined : prefix;
  if (scheme === undefined) return { scheme: "UNKNOWN", weak: true };
  return { scheme, weak: !STRONG.has(scheme) };
}
