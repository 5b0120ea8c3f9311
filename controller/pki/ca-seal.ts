// The CA key sealed for the database: AES-256-GCM under a key-encryption key (KEK) each
// controller is given, never stored in the database. With it a controller joins the fleet with
// the KEK and DATABASE_URL only (no CA key copied between hosts), and picks up a CA rotation made
// on another one; a database dump alone does not open the CA key.
//
// The KEK is 32 random bytes, base64 (`openssl rand -base64 32`), from NETSERVA_CA_KEK_FILE (a
// file, mode 0600, as a secret manager or configuration management places it) or NETSERVA_CA_KEK.
// Each sealed key is bound to its CA's pin (GCM additional data): a sealed key moved to another
// CA's row does not open.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { NetservaError } from "../../common/errors.ts";

export const KEK_FILE_ENV = "NETSERVA_CA_KEK_FILE";
export const KEK_ENV = "NETSERVA_CA_KEK";
const FORMAT = "nsm-sealed-v1";

export interface Kek {
  readonly key: Buffer;
  /** Where it came from, for messages ("NETSERVA_CA_KEK_FILE=/etc/…"). */
  readonly source: string;
}

function decodeKek(text: string, field: string, source: string): Kek {
  const trimmed = text.trim();
  const key = Buffer.from(trimmed, "base64");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) || key.length !== 32)
    throw new NetservaError(
      "invalid_argument",
      `${source}: the CA key-encryption key must be 32 bytes in base64 (44 characters; make one with \`openssl rand -base64 32\`)`,
      { field },
    );
  return { key, source };
}

/** The KEK this process was given, or undefined when none is set. Malformed: a clear error. */
export function readKek(env: Readonly<Record<string, string | undefined>>): Kek | undefined {
  const file = env[KEK_FILE_ENV];
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new NetservaError(
        "invalid_argument",
        `${KEK_FILE_ENV}=${file}: cannot read the CA key-encryption key (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
        { field: KEK_FILE_ENV },
      );
    }
    return decodeKek(text, KEK_FILE_ENV, `${KEK_FILE_ENV}=${file}`);
  }
  const inline = env[KEK_ENV];
  return inline ? decodeKek(inline, KEK_ENV, KEK_ENV) : undefined;
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

export function sealCaKey(kek: Kek, keyPem: string, pin: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", kek.key, iv);
  cipher.setAAD(Buffer.from(pin));
  const body = Buffer.concat([cipher.update(keyPem, "utf8"), cipher.final()]);
  return [FORMAT, iv.toString("base64"), cipher.getAuthTag().toString("base64"), body.toString("base64")].join(":");
}

export function openCaKey(kek: Kek, sealed: string, pin: string): string {
  const [format, iv, tag, body] = sealed.split(":");
  if (format !== FORMAT || !iv || !tag || body === undefined)
    throw new NetservaError(
      "failed_precondition",
      `the sealed key of CA ${pin} is not in a format this version reads`,
      {
        field: "certificate_authorities.key_sealed",
      },
    );
  try {
    const decipher = createDecipheriv("aes-256-gcm", kek.key, Buffer.from(iv, "base64"));
    decipher.setAAD(Buffer.from(pin));
    decipher.setAuthTag(Buffer.from(tag, "base64"));
    return Buffer.concat([decipher.update(Buffer.from(body, "base64")), decipher.final()]).toString("utf8");
  } catch {
    throw new NetservaError(
      "failed_precondition",
      `${kek.source} does not open the CA key sealed in the database (CA ${pin}): a wrong key-encryption key; ` +
        "give this controller the one the other controllers use",
      { field: kek.source.startsWith(KEK_FILE_ENV) ? KEK_FILE_ENV : KEK_ENV },
    );
  }
}
