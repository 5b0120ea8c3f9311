// The agent's side of a trust push (UpdateTrust): a bundle that would refuse the controller
// pushing it is refused (a vnode must not be locked out by one bad push), the issuing CA must be
// one of the bundle's, an unchanged bundle writes nothing, and a certificate from another CA
// than the issuing one starts a renewal at once.
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../common/log.ts";
import { createCertificateAuthority, issueCertificate } from "../../common/pki/ca.ts";
import type { CertificateAuthority } from "../../common/pki/ca.ts";
import { caPin } from "../../common/pki/pin.ts";
import { readTrustBundle } from "../../common/pki/trust-bundle.ts";
import { generateRsaKeyPem } from "../../common/pki/rsa.ts";
import { createTrustUpdate } from "../../agent/enroll/trust-update.ts";
import { createTrustStore } from "../../agent/home/trust-store.ts";

let oldCa: CertificateAuthority;
let newCa: CertificateAuthority;
let key = "";
let dir = "";

function leaf(from: CertificateAuthority, role: "agent" | "controller", identity: string): string {
  return issueCertificate({
    caKeyPem: from.keyPem,
    caCertPem: from.certPem,
    publicKeyPem: key,
    role,
    identity,
    validSeconds: 3600,
  }).certPem;
}

function der(pem: string): Uint8Array {
  return new X509Certificate(pem).raw;
}

function setup(): {
  file: string;
  changes: string[];
  renewals: () => number;
  update: ReturnType<typeof createTrustUpdate>;
} {
  const file = join(mkdtempSync(join(dir, "home-")), "ca.crt");
  const changes: string[] = [];
  let renewals = 0;
  const store = createTrustStore({ file, pem: oldCa.certPem, onChange: (pem) => changes.push(pem) });
  const own = leaf(oldCa, "agent", "vn1");
  const update = createTrustUpdate({
    store,
    log: silentLogger,
    ownCertPem: () => own,
    renewNow: () => void renewals++,
  });
  return { file, changes, renewals: () => renewals, update };
}

beforeAll(async () => {
  key = await generateRsaKeyPem();
  [oldCa, newCa] = await Promise.all([
    createCertificateAuthority({ commonName: "netserva-mail CA", validDays: 2 }),
    createCertificateAuthority({ commonName: "netserva-mail CA", validDays: 3 }),
  ]);
  dir = mkdtempSync(join(tmpdir(), "nsm-trust-update-"));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("agent trust update", () => {
  it("installs old+new, answers with both pins and renews a certificate from the old CA", async () => {
    const t = setup();
    const result = await t.update.push({
      bundlePem: newCa.certPem + oldCa.certPem,
      issuingPin: caPin(newCa.certPem),
      callerDer: der(leaf(newCa, "controller", "controller")),
    });
    expect(result.pins).toEqual([caPin(newCa.certPem), caPin(oldCa.certPem)]);
    expect(result.renewing).toBe(true);
    expect(t.renewals()).toBe(1);
    expect(t.changes).toHaveLength(1);
    expect(readTrustBundle(readFileSync(t.file, "utf8")).map((ca) => ca.pin)).toEqual(result.pins);
    expect(statSync(t.file).mode & 0o777).toBe(0o644);
  });

  it("an unchanged bundle writes nothing, and a certificate from the issuing CA is not renewed", async () => {
    const t = setup();
    const result = await t.update.push({
      bundlePem: oldCa.certPem,
      issuingPin: caPin(oldCa.certPem),
      callerDer: der(leaf(oldCa, "controller", "controller")),
    });
    expect(result).toEqual({ pins: [caPin(oldCa.certPem)], renewing: false });
    expect(t.changes).toHaveLength(0);
    expect(t.renewals()).toBe(0);
  });

  it("refuses a bundle without the calling controller's CA, and an issuing pin outside the bundle", async () => {
    const t = setup();
    await expect(
      t.update.push({
        bundlePem: newCa.certPem,
        issuingPin: caPin(newCa.certPem),
        callerDer: der(leaf(oldCa, "controller", "controller")),
      }),
    ).rejects.toThrow(/ca_bundle_pem: does not include the CA of the calling controller/);
    await expect(
      t.update.push({
        bundlePem: oldCa.certPem,
        issuingPin: caPin(newCa.certPem),
        callerDer: der(leaf(oldCa, "controller", "controller")),
      }),
    ).rejects.toThrow(/issuing_ca_pin/);
    await expect(
      t.update.push({
        bundlePem: "junk",
        issuingPin: caPin(oldCa.certPem),
        callerDer: der(leaf(oldCa, "controller", "c")),
      }),
    ).rejects.toThrow(/ca_bundle_pem/);
    expect(t.changes).toHaveLength(0);
    expect(t.renewals()).toBe(0);
  });
});
