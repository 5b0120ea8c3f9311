// A one-signature database that detects the EICAR test file. ClamAV refuses to start with no
// database, and none can be downloaded here, so tests (and offline demos) start clamd on this.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The 68-byte EICAR anti-virus test string. */
export const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
export const EICAR_SIGNATURE_NAME = "Eicar-Test-Signature";

/**
 * An .ndb body signature (Name:TargetType:Offset:HexSignature) for the EICAR string anywhere in
 * any file: unlike an .hdb whole-file hash it still matches with a trailing newline. clamd
 * reports it as "Eicar-Test-Signature.UNOFFICIAL".
 */
export function renderEicarNdb(): string {
  return `${EICAR_SIGNATURE_NAME}:0:*:${Buffer.from(EICAR, "latin1").toString("hex")}\n`;
}

/** Write eicar.ndb into clamd's DatabaseDirectory (readable by everyone; it is not a secret). */
export async function writeEicarSignatureDb(dbDir: string): Promise<string> {
  const path = join(dbDir, "eicar.ndb");
  await writeFile(path, renderEicarNdb(), { mode: 0o644 });
  return path;
}
