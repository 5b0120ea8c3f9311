// Trust on first use, made safe by the join token's CA pin (as `kubeadm join`): fetch the
// controller's chain without verification, keep only the CA whose public key hash equals the
// pin, and check that the controller's certificate was really issued by it.
import { X509Certificate } from "node:crypto";
import { connect } from "node:tls";
import type { DetailedPeerCertificate } from "node:tls";
import { NetservaError } from "../../common/errors.ts";
import { matchesPin } from "../../common/pki/pin.ts";

function toPem(der: Buffer): string {
  const body = der.toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${body}-----END CERTIFICATE-----\n`;
}

export async function fetchPinnedCa(host: string, port: number, pin: string, timeoutMs = 5000): Promise<string> {
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
  const leaf = new X509Certificate(chain.raw);
  const seen = new Set<string>();
  for (
    let cert: DetailedPeerCertificate | undefined = chain;
    cert && !seen.has(cert.fingerprint256);
    cert = cert.issuerCertificate
  ) {
    seen.add(cert.fingerprint256);
    if (matchesPin(cert.raw, pin)) {
      const ca = new X509Certificate(cert.raw);
      if (!leaf.verify(ca.publicKey)) break;
      return toPem(cert.raw);
    }
  }
  throw new NetservaError(
    "permission_denied",
    `controller ${host}:${port} is not signed by the CA pinned in the join token: refusing to enroll`,
    { field: "token" },
  );
}
