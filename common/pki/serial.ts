// Certificate serial numbers: 126 bits from the OS CSPRNG. The first byte is forced into
// 0x40..0x7f so the DER INTEGER is positive, minimally encoded (strict parsers refuse a
// padded one) and always 32 hex digits: the hex we store equals what any peer reads back.
import { randomBytes } from "node:crypto";

export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x3f) | 0x40;
  return bytes.toString("hex");
}

/** Lowercase hex without separators or leading zeros, the form serials are compared in. */
export function normalizeSerialHex(hex: string): string {
  const clean = hex
    .replace(/[^0-9a-fA-F]/g, "")
    .toLowerCase()
    .replace(/^0+/, "");
  return clean === "" ? "0" : clean;
}
