// A grpc-js CertificateProvider whose identity and trusted CAs we can swap at run time: a renewed certificate is
// used for new handshakes while established connections carry on (rotation without downtime).
import type { experimental } from "@grpc/grpc-js";

type Provider = experimental.CertificateProvider;
type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

export interface CertificateSource extends Provider {
  setIdentity(certPem: string, keyPem: string): void;
  /** The CAs peers are verified against (a CA rotation's trust bundle). */
  setCa(caPem: string): void;
}

export function createCertificateSource(options: {
  caPem: string;
  certPem: string;
  keyPem: string;
}): CertificateSource {
  let ca = { caCertificate: Buffer.from(options.caPem) };
  let identity = { certificate: Buffer.from(options.certPem), privateKey: Buffer.from(options.keyPem) };
  const caListeners = new Set<CaListener>();
  const identityListeners = new Set<IdentityListener>();
  return {
    // grpc-js registers its watcher only after adding the listener: answer on the next tick.
    addCaCertificateListener(listener) {
      caListeners.add(listener);
      setImmediate(() => caListeners.has(listener) && listener(ca));
    },
    removeCaCertificateListener: (listener) => void caListeners.delete(listener),
    addIdentityCertificateListener(listener) {
      identityListeners.add(listener);
      setImmediate(() => identityListeners.has(listener) && listener(identity));
    },
    removeIdentityCertificateListener: (listener) => void identityListeners.delete(listener),
    setCa(caPem) {
      ca = { caCertificate: Buffer.from(caPem) };
      for (const listener of caListeners) listener(ca);
    },
    setIdentity(certPem, keyPem) {
      identity = { certificate: Buffer.from(certPem), privateKey: Buffer.from(keyPem) };
      for (const listener of identityListeners) listener(identity);
    },
  };
}
