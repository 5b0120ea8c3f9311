// Expiry of the certificates Postfix and Dovecot present: the mail certificate (the first in its
// chain file) and every SNI certificate beside it (mail/sni-files.ts; the HTTPS listener serves
// the same ones). The earliest counts: an expiring certificate for one name must not hide behind
// a fresh mail certificate.
import { X509Certificate } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";

async function notAfterOf(file: string): Promise<number> {
  const pem = await readFile(file, "utf8").catch(() => "");
  if (!pem.includes("BEGIN CERTIFICATE")) return 0;
  return new Date(new X509Certificate(pem).validTo).getTime();
}

/** The earliest expiry (unix ms) of the mail certificate and the SNI ones; 0 = no certificate. */
export async function mailTlsNotAfter(certFile: string): Promise<number> {
  const dir = dirname(certFile);
  const sni = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^sni-[0-9a-f]{16}\.crt$/.test(n));
  const all = (await Promise.all([certFile, ...sni.map((n) => join(dir, n))].map(notAfterOf))).filter((t) => t > 0);
  return all.length === 0 ? 0 : Math.min(...all);
}
