// Trust on first use, made safe by the join token's CA pin (as `kubeadm join`): fetch the
// controller's chain without verification and accept it only if the controller's certificate
// chains, signature by signature, to a certificate whose public key hash equals the pin.
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import type { DetailedPeerCertificate } from "node:tls";
import { NetservaError } from "../../common/errors.ts";
import { matchesPin } from "../../common/pki/pin.ts";

function toPem(der: Buffer): string {
  const body = der.toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${body}-----END CERTIFICATE-----\n`;
}

export interface PinnedController {
  /** The self-signed CA at the top of the verified chain: the TLS trust anchor for enrolling. */
  anchorPem: string;
  /** The controller certificate that was checked; the enrolling channel must see the same one. */
  leafFingerprint256: string;
}

export async function fetchPinnedCa(
  host: string,
  port: number,
  pin: string,
  timeoutMs = 5000,
): Promise<PinnedController> {
  const chain = await new Promise<DetailedPeerCertificate>((resolve, reject) => {
    const socket = connect({
      host,
      port,
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
      timeout: timeoutMs,
    });
    socket.once("secureConnect", () => {
      const peer = socket.getPeerCertificate(true);
      socket.destroy();
      resolve(peer);
    });
    socket.once("timeout", () => {
      socket.destroy();
      reject(
        new NetservaError("unavailable", `controller ${host}:${port} did not answer in ${timeoutMs} ms`, {
          field: "controller",
        }),
      );
    });
    socket.once("error", (error) =>
      reject(
        new NetservaError("unavailable", `cannot reach controller ${host}:${port}: ${error.message}`, {
          field: "controller",
        }),
      ),
    );
  });
  // Walk from the controller's certificate up the chain it sent, checking each signature, until
  // a certificate carries the pinned key: the pinned CA itself, or (during a CA rotation) the
  // link that certifies the new CA under the old one's name.
  const leaf = new X509Certificate(chain.raw);
  const seen = new Set<string>([chain.fingerprint256]);
  let child = leaf;
  let pinned = false;
  for (let cert = chain.issuerCertificate; cert && !seen.has(cert.fingerprint256); cert = cert.issuerCertificate) {
    seen.add(cert.fingerprint256);
    const issuer = new X509Certificate(cert.raw);
    if (!child.checkIssued(issuer) || !child.verify(issuer.publicKey)) break;
    if (matchesPin(cert.raw, pin)) pinned = true;
    // The self-signed end of a verified walk through the pinned key anchors the TLS channel.
    if (pinned && issuer.checkIssued(issuer) && issuer.verify(issuer.publicKey))
      return { anchorPem: toPem(cert.raw), leafFingerprint256: chain.fingerprint256 };
    child = issuer;
  }
  throw new NetservaError(
    "permission_denied",
    `controller ${host}:${port} is not signed by the CA pinned in the join token: refusing to enroll ` +
      "(if the controller's CA was rotated and retired since, the join token was issued before the CA rotation: " +
      "issue a new one with `netserva-mail vnode token NAME`)",
    { field: "token" },
  );
}
