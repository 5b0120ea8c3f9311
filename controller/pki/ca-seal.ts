// The CA key sealed for the database: AES-256-GCM under a key-encryption key (KEK) each
// controller is given, never stored in the database. With it a controller joins the fleet with
// the KEK and DATABASE_URL only (no CA key copied between hosts), and picks up a CA rotation made
// on another one; a database dump alone does not open the CA key.
//
// The KEK is 32 random bytes, base64 (`openssl rand -base64 32`), from NETSERVA_CA_KEK_FILE (a
// file, mode 0600, as a secret manager or configuration management places it) or NETSERVA_CA_KEK.
// Each sealed key is bound to its CA's pin (GCM additional data): a sealed key moved to another
// CA's row does not open.
//
// Changing the KEK (`ca rekey`) without locking a controller out: during the change-over each
// controller holds the new KEK and the old one as NETSERVA_CA_KEK_PREVIOUS_FILE (or
// NETSERVA_CA_KEK_PREVIOUS). A sealed key opens with whichever of the two it was sealed under
// (GCM's tag tells), and a CA step seals under the KEK the database's keys are sealed under
// now (publishCa), not the newest this controller holds: until `ca rekey` the fleet's KEK stays
// the old one, so controllers not yet given the new one keep working. The sealed format is
// unchanged (no key id in it), so controllers of the previous release read every row.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { NetservaError } from "../../common/errors.ts";

export const KEK_FILE_ENV = "NETSERVA_CA_KEK_FILE";
export const KEK_ENV = "NETSERVA_CA_KEK";
export const KEK_PREVIOUS_FILE_ENV = "NETSERVA_CA_KEK_PREVIOUS_FILE";
export const KEK_PREVIOUS_ENV = "NETSERVA_CA_KEK_PREVIOUS";
const FORMAT = "nsm-sealed-v1";

/** One key-encryption key. */
export interface KekKey {
  readonly key: Buffer;
  /** Where it came from, for messages ("NETSERVA_CA_KEK_FILE=/etc/…"). */
  readonly source: string;
  /** The variable or option that gave it, for errors' `field`. */
  readonly field: string;
}

/** The KEK a controller seals with, and during a KEK change-over the one it replaces. */
export interface Kek extends KekKey {
  readonly previous?: KekKey;
}

function decodeKek(text: string, field: string, source: string): KekKey {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, "base64");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== 32)
    throw new NetservaError(
      "invalid_argument",
      `${source}: the CA key-encryption key must be 32 bytes in base64 (44 characters; make one with \`openssl rand -base64 32\`)`,
      { field },
    );
  return { key, source, field };
}

/** A KEK from a file; `field` names the variable or option that gave the path. */
export function readKekFile(file: string, field: string): KekKey {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new NetservaError(
      "invalid_argument",
      `${field}=${file}: cannot read the CA key-encryption key (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      { field },
    );
  }
  return decodeKek(text, field, `${field}=${file}`);
}

function readOne(
  env: Readonly<Record<string, string | undefined>>,
  fileVar: string,
  inlineVar: string,
): KekKey | undefined {
  const file = env[fileVar];
  if (file) return readKekFile(file, fileVar);
  const inline = env[inlineVar];
  return inline ? decodeKek(inline, inlineVar, inlineVar) : undefined;
}

/** The KEK this process was given, or undefined when none is set. Malformed: a clear error. */
export function readKek(env: Readonly<Record<string, string | undefined>>): Kek | undefined {
  const current = readOne(env, KEK_FILE_ENV, KEK_ENV);
  const previous = readOne(env, KEK_PREVIOUS_FILE_ENV, KEK_PREVIOUS_ENV);
  if (previous && !current)
    throw new NetservaError(
      "invalid_argument",
      `${previous.field} is set but ${KEK_FILE_ENV} (or ${KEK_ENV}) is not: the previous CA key-encryption key ` +
        `is only accepted next to the current one`,
      { field: KEK_FILE_ENV },
    );
  if (!current) return undefined;
  return previous && !previous.key.equals(current.key) ? { ...current, previous } : current;
}

/**
 * A KEK's id: a hash of it under a fixed label, 16 hex digits. What a controller publishes (its
 * heartbeat row) and `ca rekey` prints, so operators and the rekey check can tell KEKs apart
 * without the key leaving the host.
 */
export function kekId(kek: KekKey): string {
  return createHash("sha256").update("netserva-mail CA KEK id\0").update(kek.key).digest("hex").slice(0, 16);
}

/** The ids of every KEK a controller holds (none without one). */
export function kekIds(kek: Kek | undefined): string[] {
  if (!kek) return [];
  return kek.previous ? [kekId(kek), kekId(kek.previous)] : [kekId(kek)];
}

/** The error for a controller that needs the KEK and was not given one. */
export function missingKek(): NetservaError {
  return new NetservaError(
    "failed_precondition",
    `the CA key is kept sealed in the database (certificate_authorities.key_sealed) and this controller has no key-encryption key: ` +
      `set ${KEK_FILE_ENV} to a file holding the one the other controllers use (or ${KEK_ENV})`,
    { field: KEK_FILE_ENV },
  );
}

export function sealCaKey(kek: KekKey, keyPem: string, pin: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", kek.key, iv);
  cipher.setAAD(Buffer.from(pin));
  const body = Buffer.concat([cipher.update(keyPem, "utf8"), cipher.final()]);
  return [FORMAT, iv.toString("base64"), cipher.getAuthTag().toString("base64"), body.toString("base64")].join(":");
}

function openWith(kek: KekKey, iv: string, tag: string, body: string, pin: string): string | undefined {
  try {
    const decipher = createDecipheriv("aes-256-gcm", kek.key, Buffer.from(iv, "base64"));
    decipher.setAAD(Buffer.from(pin));
    decipher.setAuthTag(Buffer.from(tag, "base64"));
    return Buffer.concat([decipher.update(Buffer.from(body, "base64")), decipher.final()]).toString("utf8");
  } catch {
    return undefined;
  }
}

/** The CA key in clear and the KEK (current or previous) that opened it. */
export function openCaKeyWith(kek: Kek, sealed: string, pin: string): { keyPem: string; by: KekKey } {
  const [format, iv, tag, body] = sealed.split(":");
  if (format !== FORMAT || !iv || !tag || body === undefined)
    throw new NetservaError(
      "failed_precondition",
      `the sealed key of CA ${pin} is not in a format this version reads`,
      {
        field: "certificate_authorities.key_sealed",
      },
    );
  for (const candidate of kek.previous ? [kek, kek.previous] : [kek]) {
    const keyPem = openWith(candidate, iv, tag, body, pin);
    if (keyPem !== undefined) return { keyPem, by: candidate };
  }
  throw new NetservaError(
    "failed_precondition",
    `${kek.source}${kek.previous ? ` (nor ${kek.previous.source})` : ""} does not open the CA key sealed in the database (CA ${pin}): ` +
      "a wrong key-encryption key; give this controller the one the other controllers use " +
      "(after a `netserva-mail ca rekey`, the new one)",
    { field: kek.field },
  );
}

export function openCaKey(kek: Kek, sealed: string, pin: string): string {
  return openCaKeyWith(kek, sealed, pin).keyPem;
}
