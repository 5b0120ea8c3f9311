// Which ACME server, checked at the edge: `--server URL` (https only, no credentials), or
// `--staging` for Let's Encrypt's staging server; Let's Encrypt's production server by default.
import { readFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { invalid } from "../../common/errors.ts";
import { pemBlocks } from "../../common/pki/trust-bundle.ts";

export const LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory";
export const LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory";

export function parseAcmeServer(server: string | undefined, staging: boolean | undefined): string {
  if (server !== undefined && staging) throw invalid("server", "give --server or --staging, not both");
  if (server === undefined) return staging ? LETS_ENCRYPT_STAGING : LETS_ENCRYPT;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw invalid("server", `'${server.slice(0, 80)}' is not a URL; give the ACME directory URL`);
  }
  if (url.protocol !== "https:") throw invalid("server", "must be an https:// ACME directory URL (RFC 8555)");
  if (url.username || url.password) throw invalid("server", "must not carry credentials");
  return url.href;
}

/** `--server-ca FILE`: PEM certificates trusted for the ACME server's own HTTPS. */
export function readServerCa(file: string | undefined): string | null {
  if (file === undefined) return null;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw invalid("server-ca", `cannot read ${file}`);
  }
  const blocks = pemBlocks(text);
  if (blocks.length === 0) throw invalid("server-ca", `${file} holds no PEM certificate`);
  for (const block of blocks)
    try {
      new X509Certificate(block);
    } catch {
      throw invalid("server-ca", `${file} holds a PEM block that is not a certificate`);
    }
  return blocks.join("");
}

/** An e-mail address for the ACME account (expiry notices); checked loosely, as ACME servers do. */
export function parseAcmeEmail(email: string | undefined): string | null {
  if (email === undefined || email === "") return null;
  if (!/^[^\s@<>,;:"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$/.test(email))
    throw invalid("email", `'${email.slice(0, 80)}' is not an e-mail address`);
  return email;
}
