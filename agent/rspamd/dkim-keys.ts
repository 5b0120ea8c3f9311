// DKIM private keys as Rspamd reads them. The contract carries PEM; Rspamd 3.4 reads RSA keys as
// PEM but Ed25519 keys only as base64 of the raw 32-byte seed (a PKCS#8 PEM fails with "cannot
// extract rsa key from evp key"), so Ed25519 keys are converted here.
import { createPrivateKey, type KeyObject } from "node:crypto";
import { join } from "node:path";
import type { DkimKey } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { invalid } from "../../common/errors.ts";
import { checkDomain } from "../lookup/names.ts";
import type { RspamdPaths } from "./paths.ts";

/** A file whose owner and mode matter: apply must create it with exactly these. */
export interface OwnedFile {
  readonly path: string;
  readonly content: string;
  readonly mode: number;
  readonly owner: string;
  readonly group: string;
}

// Selectors are DNS labels (they become <selector>._domainkey.<domain>) and part of a file name.
const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function checkSelector(value: string, field: string): string {
  if (value.length > 63 || !SELECTOR.test(value))
    throw invalid(field, "must be lowercase DNS labels (letters, digits, hyphens), at most 63 characters");
  return value;
}

/** Same naming as Rspamd's own default ($DBDIR/dkim/$domain.$selector.key). */
export function dkimKeyPath(paths: RspamdPaths, domain: string, selector: string): string {
  return join(
    paths.dkimDir,
    `${checkDomain(domain, "dkim_key.domain")}.${checkSelector(selector, "dkim_key.selector")}.key`,
  );
}

export interface CheckedDkimKey {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: "rsa" | "ed25519";
  readonly key: KeyObject;
}

/** Validate every key once: names, algorithm, a parseable key of that type, no duplicates. */
export function checkDkimKeys(keys: readonly DkimKey[]): CheckedDkimKey[] {
  const seen = new Set<string>();
  return keys.map((k, i) => {
    const field = `dkim_keys[${i}]`;
    const domain = checkDomain(k.domain, `${field}.domain`);
    const selector = checkSelector(k.selector, `${field}.selector`);
    if (k.algorithm !== "rsa" && k.algorithm !== "ed25519")
      throw invalid(`${field}.algorithm`, 'must be "rsa" or "ed25519"');
    const id = `${domain}/${selector}`;
    if (seen.has(id)) throw invalid(`${field}.selector`, `duplicate selector ${selector} for ${domain}`);
    seen.add(id);
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: k.privateKeyPem, format: "pem" });
    } catch {
      throw invalid(`${field}.private_key_pem`, "is not a PEM private key"); // never echo key material
    }
    if (key.asymmetricKeyType !== k.algorithm) {
      throw invalid(
        `${field}.private_key_pem`,
        `is a ${key.asymmetricKeyType ?? "unknown"} key, expected ${k.algorithm}`,
      );
    }
    // RFC 8301: verifiers may ignore signatures from RSA keys under 1024 bits.
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (k.algorithm === "rsa" && bits < 1024)
      throw invalid(`${field}.private_key_pem`, "RSA key must be at least 1024 bits (2048 recommended)");
    return { domain, selector, algorithm: k.algorithm, key };
  });
}

function rspamdKeyText(k: CheckedDkimKey): string {
  if (k.algorithm === "rsa") return k.key.export({ type: "pkcs8", format: "pem" }).toString();
  const d = k.key.export({ format: "jwk" }).d;
  if (d === undefined) throw invalid("dkim_key.private_key_pem", "Ed25519 key has no private part");
  return `${Buffer.from(d, "base64url").toString("base64")}\n`;
}

/** The key files dkim_signing.conf points at: 0600, owned by the user Rspamd's workers run as. */
export function renderDkimKeyFiles(
  paths: RspamdPaths,
  keys: readonly DkimKey[],
  owner: { user: string; group: string } = { user: "_rspamd", group: "_rspamd" },
): OwnedFile[] {
  return checkDkimKeys(keys).map((k) => ({
    path: dkimKeyPath(paths, k.domain, k.selector),
    content: rspamdKeyText(k),
    mode: 0o600,
    owner: owner.user,
    group: owner.group,
  }));
}
