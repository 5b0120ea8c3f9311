// MTA-STS (RFC 8461) for a domain on a vnode. A policy starts in mode testing and enforces only
// once the MX presents a publicly trusted certificate: a sender that honours an enforce policy
// refuses to deliver to an MX whose certificate it cannot verify, so enforcing behind the
// controller's own CA would bounce the domain's mail at every compliant sender. "Publicly trusted"
// is known from the certificate's issuer: an ACME certificate that no controller CA signed.
import { X509Certificate } from "node:crypto";
import { verifyIssuedBy } from "../../common/pki/inspect.ts";
import { pemBlocks } from "../../common/pki/trust-bundle.ts";

export type MtaStsMode = "testing" | "enforce";

/** max_age: a day while testing (a mistake is forgotten soon), a week once enforced (RFC 8461 §3.2). */
export const MTA_STS_MAX_AGE: Record<MtaStsMode, number> = { testing: 86_400, enforce: 604_800 };

/** The policy file, served at https://mta-sts.<domain>/.well-known/mta-sts.txt. */
export function mtaStsPolicy(mailHost: string, mode: MtaStsMode): string {
  return `version: STSv1\nmode: ${mode}\nmx: ${mailHost}\nmax_age: ${MTA_STS_MAX_AGE[mode]}\n`;
}

/** A certificate some name of a vnode is served with. */
export interface PresentedCertificate {
  readonly names: readonly string[];
  /** acme | ca | operator */
  readonly issuer: string;
  readonly certificateChainPem: string;
}

/** Whether `name` is one of `names`, or matched by a wildcard `*.parent` one label deep. */
export function coversName(names: readonly string[], name: string): boolean {
  const n = name.toLowerCase();
  return names.some((p) => {
    const q = p.toLowerCase();
    if (q === n) return true;
    return q.startsWith("*.") && n.endsWith(q.slice(1)) && !n.slice(0, n.length - q.length + 1).includes(".");
  });
}

/** The certificate presented for `name`: a named one covering it, else the vnode's mail one. */
export function presentedFor(
  name: string,
  named: readonly PresentedCertificate[],
  mail: PresentedCertificate | null,
): PresentedCertificate | null {
  return named.find((c) => coversName(c.names, name)) ?? mail;
}

function signedByControllerCa(chainPem: string, controllerCaPems: readonly string[]): boolean {
  const leaf = pemBlocks(chainPem)[0];
  if (leaf === undefined) return true;
  try {
    new X509Certificate(leaf);
  } catch {
    return true; // unreadable: certainly not something to enforce on
  }
  return controllerCaPems.some((ca) => {
    try {
      return verifyIssuedBy(leaf, ca);
    } catch {
      return false;
    }
  });
}

/** enforce once the MX host's certificate came from ACME (and from none of the controller's CAs). */
export function mtaStsModeFor(
  mailHost: string,
  named: readonly PresentedCertificate[],
  mail: PresentedCertificate | null,
  controllerCaPems: readonly string[],
): MtaStsMode {
  const cert = presentedFor(mailHost, named, mail);
  if (!cert || cert.issuer !== "acme") return "testing";
  return signedByControllerCa(cert.certificateChainPem, controllerCaPems) ? "testing" : "enforce";
}
