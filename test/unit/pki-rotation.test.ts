// CA rotation's PKI, checked with Node's TLS (OpenSSL) rather than by our own code: a new-CA
// certificate sent with the link certificate is accepted by a peer that trusts only the old CA
// (the roots carry pathlen 0, so this holds only because the link is self-issued), by one that
// trusts only the new CA and by one that trusts both; once the old CA is dropped from a trust
// bundle its certificates are refused. An enrolling agent's pin walk reaches the old or the new
// pin through the link, and refuses any other pin with words that say what to do.
import { createServer, connect } from "node:tls";
import type { Server } from "node:tls";
import type { AddressInfo } from "node:net";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, issueCertificate } from "../../common/pki/ca.ts";
import type { CertificateAuthority } from "../../common/pki/ca.ts";
import { createCrossCertificate } from "../../common/pki/cross-cert.ts";
import { caPin } from "../../common/pki/pin.ts";
import { generateRsaKeyPem } from "../../common/pki/rsa.ts";
import { bundlePem, issuerIn, readTrustBundle } from "../../common/pki/trust-bundle.ts";
import { NetservaError } from "../../common/errors.ts";
import { fetchPinnedCa } from "../../agent/enroll/pinned-ca.ts";

let oldCa: CertificateAuthority;
let newCa: CertificateAuthority;
let otherName: CertificateAuthority;
let link: string;
let keys: string[];
const servers: Server[] = [];

function leaf(from: CertificateAuthority, key: string, role: "agent" | "controller", identity: string): string {
  return issueCertificate({
    caKeyPem: from.keyPem,
    caCertPem: from.certPem,
    publicKeyPem: key,
    role,
    identity,
    validSeconds: 3600,
  }).certPem;
}

function key(i: number): string {
  const k = keys[i];
  if (k === undefined) throw new Error(`no key ${i}`);
  return k;
}

beforeAll(async () => {
  keys = await Promise.all([generateRsaKeyPem(), generateRsaKeyPem()]);
  [oldCa, newCa, otherName] = await Promise.all([
    createCertificateAuthority({ commonName: "netserva-mail CA", validDays: 2 }),
    createCertificateAuthority({ commonName: "netserva-mail CA", validDays: 3 }),
    createCertificateAuthority({ commonName: "another CA", validDays: 2, keyBits: 2048 }),
  ]);
  link = createCrossCertificate({
    oldCaKeyPem: oldCa.keyPem,
    oldCaCertPem: oldCa.certPem,
    newCaKeyPem: newCa.keyPem,
    newCaCertPem: newCa.certPem,
  });
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A mutual-TLS handshake; resolves with what each side concluded. */
async function handshake(o: {
  serverCert: string;
  serverKey: string;
  serverTrust: string;
  clientCert: string;
  clientKey: string;
  clientTrust: string;
}): Promise<{ clientOk: boolean; clientError: string; serverSawAuthorized: boolean }> {
  let serverSawAuthorized = false;
  const server = createServer(
    { cert: o.serverCert, key: o.serverKey, ca: o.serverTrust, requestCert: true, rejectUnauthorized: false },
    (socket) => {
      serverSawAuthorized = socket.authorized;
      socket.end();
    },
  );
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return new Promise((resolve) => {
    const socket = connect({
      host: "127.0.0.1",
      port,
      ca: o.clientTrust,
      cert: o.clientCert,
      key: o.clientKey,
      checkServerIdentity: () => undefined,
    });
    socket.once("secureConnect", () => {
      socket.once("close", () => resolve({ clientOk: true, clientError: "", serverSawAuthorized }));
      socket.resume();
    });
    socket.once("error", (error) => resolve({ clientOk: false, clientError: error.message, serverSawAuthorized }));
  });
}

describe("CA rotation: link certificate", () => {
  it("a new-CA certificate with the link is accepted by old-only, new-only and both trust bundles", async () => {
    const controller = leaf(newCa, key(0), "controller", "controller") + link;
    const agentOld = leaf(oldCa, key(1), "agent", "vn1");
    for (const trust of [oldCa.certPem, newCa.certPem, oldCa.certPem + newCa.certPem]) {
      const result = await handshake({
        serverCert: controller,
        serverKey: key(0),
        serverTrust: oldCa.certPem + newCa.certPem,
        clientCert: agentOld,
        clientKey: key(1),
        clientTrust: trust,
      });
      expect(result.clientError).toBe("");
      expect(result.clientOk).toBe(true);
      expect(result.serverSawAuthorized).toBe(true);
    }
  });

  it("as a client certificate too: an agent that trusts only the old CA accepts the new controller", async () => {
    const result = await handshake({
      serverCert: leaf(oldCa, key(1), "agent", "vn1"),
      serverKey: key(1),
      serverTrust: oldCa.certPem,
      clientCert: leaf(newCa, key(0), "controller", "controller") + link,
      clientKey: key(0),
      clientTrust: oldCa.certPem + newCa.certPem,
    });
    expect(result.clientOk).toBe(true);
    expect(result.serverSawAuthorized).toBe(true);
  });

  it("without the link, an old-only peer refuses the new-CA certificate (the link is what carries it)", async () => {
    const result = await handshake({
      serverCert: leaf(newCa, key(0), "controller", "controller"),
      serverKey: key(0),
      serverTrust: newCa.certPem,
      clientCert: leaf(newCa, key(1), "agent", "vn1"),
      clientKey: key(1),
      clientTrust: oldCa.certPem,
    });
    expect(result.clientOk).toBe(false);
  });

  it("after retirement (new-only trust) an old-CA certificate is refused", async () => {
    const result = await handshake({
      serverCert: leaf(newCa, key(0), "controller", "controller") + link,
      serverKey: key(0),
      serverTrust: newCa.certPem,
      clientCert: leaf(oldCa, key(1), "agent", "vn1"),
      clientKey: key(1),
      clientTrust: newCa.certPem,
    });
    expect(result.serverSawAuthorized).toBe(false);
  });

  it("a link needs the same subject name (another name would break the roots' path length)", () => {
    expect(() =>
      createCrossCertificate({
        oldCaKeyPem: oldCa.keyPem,
        oldCaCertPem: oldCa.certPem,
        newCaKeyPem: otherName.keyPem,
        newCaCertPem: otherName.certPem,
      }),
    ).toThrow(/subject name/);
  });
});

describe("CA rotation: trust bundle", () => {
  it("reads old and new, finds each certificate's issuer, and refuses duplicates and non-CAs", () => {
    const bundle = readTrustBundle(bundlePem([{ pem: newCa.certPem }, { pem: oldCa.certPem }]));
    expect(bundle.map((ca) => ca.pin)).toEqual([caPin(newCa.certPem), caPin(oldCa.certPem)]);
    expect(issuerIn(leaf(oldCa, key(1), "agent", "vn1"), bundle)?.pin).toBe(caPin(oldCa.certPem));
    expect(issuerIn(leaf(newCa, key(1), "agent", "vn1"), bundle)?.pin).toBe(caPin(newCa.certPem));
    expect(issuerIn(leaf(otherName, key(1), "agent", "vn1"), bundle)).toBeUndefined();
    expect(() => readTrustBundle(oldCa.certPem + oldCa.certPem)).toThrow(/appears twice/);
    expect(() => readTrustBundle(leaf(oldCa, key(1), "agent", "vn1"))).toThrow(/self-signed CA/);
    expect(() => readTrustBundle(link)).toThrow(/self-signed CA/);
    expect(() => readTrustBundle("")).toThrow(NetservaError);
  });
});

describe("CA rotation: an enrolling agent's pin walk", () => {
  async function serveChain(chain: string): Promise<number> {
    const server = createServer({ cert: chain, key: key(0) }, (socket) => socket.end());
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return (server.address() as AddressInfo).port;
  }

  it("reaches the old pin and the new pin through the link; the anchor is the old root", async () => {
    const port = await serveChain(leaf(newCa, key(0), "controller", "controller") + link + oldCa.certPem);
    for (const pin of [caPin(oldCa.certPem), caPin(newCa.certPem)]) {
      const pinned = await fetchPinnedCa("127.0.0.1", port, pin);
      expect(caPin(pinned.anchorPem)).toBe(caPin(oldCa.certPem));
      expect(pinned.leafFingerprint256).toMatch(/^[0-9A-F:]+$/);
    }
  });

  it("before any rotation the CA itself is the anchor", async () => {
    const port = await serveChain(leaf(oldCa, key(0), "controller", "controller") + oldCa.certPem);
    expect(caPin((await fetchPinnedCa("127.0.0.1", port, caPin(oldCa.certPem))).anchorPem)).toBe(caPin(oldCa.certPem));
  });

  it("a pin on no verified path is refused, saying a token from before a rotation needs replacing", async () => {
    const port = await serveChain(leaf(newCa, key(0), "controller", "controller") + newCa.certPem);
    await expect(fetchPinnedCa("127.0.0.1", port, caPin(oldCa.certPem))).rejects.toThrow(
      /issued before the CA rotation: issue a new one/,
    );
    // A chain that merely contains the pinned CA, without it signing the path, is not enough.
    const port2 = await serveChain(leaf(newCa, key(0), "controller", "controller") + newCa.certPem + oldCa.certPem);
    await expect(fetchPinnedCa("127.0.0.1", port2, caPin(oldCa.certPem))).rejects.toThrow(/not signed by the CA/);
  });
});
