// Expiry of the certificate Postfix and Dovecot present (the first in the chain file).
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";

export async function mailTlsNotAfter(certFile: string): Promise<number> {
  const pem = await readFile(certFile, "utf8").catch(() => "");
  if (!pem.includes("BEGIN CERTIFICATE")) return 0;
  return new Date(new X509Certificate(pem).validTo).getTime();
}
