// Reading certificates with Node's own X509Certificate (OpenSSL), which parses any key type,
// unlike forge. Accepts what the edges hand over: PEM text, raw DER (grpc-js
// `sslPeerCertificate.raw`) or an X509Certificate (`TLSSocket.getPeerX509Certificate()`).
import { X509Certificate } from "node:crypto";
import { invalid } from "../errors.ts";

export type CertificateInput = string | Uint8Array | X509Certificate;

const MAX_CERT_BYTES = 65_536;

export function toX509(input: CertificateInput, field = "certificate"): X509Certificate {
  if (input instanceof X509Certificate) return input;
  if (typeof input === "string" && !input.includes("-----BEGIN CERTIFICATE-----")) {
    throw invalid(field, "must be a PEM certificate (BEGIN CERTIFICATE)");
  }
  if (typeof input !== "string" && !(input instanceof Uint8Array))
    throw invalid(field, "must be PEM text or DER bytes");
  if (input.length === 0 || input.length > MAX_CERT_BYTES) throw invalid(field, "is empty or too large");
  try {
    return new X509Certificate(typeof input === "string" ? input : Buffer.from(input));
  } catch {
    throw invalid(field, "is not a well-formed X.509 certificate");
  }
}

export interface AltName {
  /** As OpenSSL names it: "DNS", "URI", "IP Address", "email", … */
  type: string;
  value: string;
}

/** Splits Node's `subjectAltName` text. Node JSON-quotes a value holding a comma or quote
 *  (`URI:"a\u002c DNS:b"`), so a naive split on ", " could be fooled into a forged entry. */
export function parseSubjectAltName(text: string | undefined): AltName[] {
  const names: AltName[] = [];
  if (!text) return names;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) throw invalid("certificate", "subjectAltName is malformed");
    const type = text.slice(i, colon);
    let end: number;
    let value: string;
    if (text[colon + 1] === '"') {
      end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      end += 1;
      try {
        value = String(JSON.parse(text.slice(colon + 1, end)));
      } catch {
        throw invalid("certificate", "subjectAltName is malformed");
      }
    } else {
      end = text.indexOf(", ", colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    names.push({ type, value });
    if (end < text.length && !text.startsWith(", ", end)) throw invalid("certificate", "subjectAltName is malformed");
    i = end + 2;
  }
  return names;
}

/** The single value of a name attribute such as CN, or undefined when absent or repeated. */
export function nameAttribute(name: NodeJS.Dict<string | string[]> | undefined, key: string): string | undefined {
  const value = name?.[key];
  return typeof value === "string" ? value : undefined;
}
