// The PKI library: CA, issuance, CSR handling, inspection and pins, each checked with Node's
// own X509Certificate (OpenSSL), independently of the node-forge code that built the
// certificates. Keys are generated once in beforeAll and reused: RSA generation dominates.
import { createHash, createPublicKey, X509Certificate } from "node:crypto";
import forge from "node-forge";
import { beforeAll, describe, expect, it } from "vitest";
import { NetservaError } from "../../common/errors.ts";
import { createCertificateAuthority, issueCertificate } from "../../common/pki/ca.ts";
import type { CertificateAuthority, IssueCertificateOptions } from "../../common/pki/ca.ts";
import { inspectCertificate, inspectDer, verifyIssuedBy } from "../../common/pki/inspect.ts";
import { createKeyAndCsr, createSelfSigned } from "../../common/pki/keys.ts";
import { caPin, matchesPin } from "../../common/pki/pin.ts";
import { generateRsaKeyPem } from "../../common/pki/rsa.ts";
import { randomSerialHex } from "../../common/pki/serial.ts";
import { parseSubjectAltName } from "../../common/pki/x509.ts";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let keys: string[];
let csrPem: string;

beforeAll(async () => {
  [ca, otherCa, ...keys] = await Promise.all([
    createCertificateAuthority({ commonName: "netserva-mail test CA", validDays: 30 }),
    createCertificateAuthority({ commonName: "some other CA", validDays: 30, keyBits: 2048 }),
    generateRsaKeyPem(),
    generateRsaKeyPem(),
  ]);
  csrPem = (await createKeyAndCsr({ commonName: "mx1", keyPem: key(0) })).csrPem;
});

function key(i: number): string {
  const pem = keys[i];
  if (pem === undefined) throw new Error(`no test key ${i}`);
  return pem;
}

function issue(overrides: Partial<IssueCertificateOptions> = {}): ReturnType<typeof issueCertificate> {
  return issueCertificate({
    caKeyPem: ca.keyPem,
    caCertPem: ca.certPem,
    csrPem,
    role: "agent",
    identity: "mx1",
    validSeconds: 3600,
    ...overrides,
  });
}

/** Runs `fn`, expects a NetservaError refusing `field`, and returns it. */
function refusal(fn: () => unknown): NetservaError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(NetservaError);
    return error as NetservaError;
  }
  throw new Error("expected a refusal");
}

function expectInvalid(fn: () => unknown, field: string): void {
  const error = refusal(fn);
  expect(error.code).toBe("invalid_argument");
  expect(error.field).toBe(field);
}

/** A CSR built by hand: `signWith` may differ from the key it carries (a forged request). */
function handMadeCsr(options: {
  publicKeyPem: string;
  signWith: string;
  subject: forge.pki.CertificateField[];
  sanUris?: string[];
}): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = forge.pki.publicKeyFromPem(
    createPublicKey(options.publicKeyPem).export({ type: "spki", format: "pem" }).toString(),
  );
  csr.setSubject(options.subject);
  if (options.sanUris) {
    csr.setAttributes([
      {
        name: "extensionRequest",
        extensions: [
          { name: "subjectAltName", altNames: options.sanUris.map((value) => ({ type: 6, value })) },
          { name: "basicConstraints", cA: true },
        ],
      },
    ]);
  }
  csr.sign(forge.pki.privateKeyFromPem(options.signWith), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

describe("createCertificateAuthority", () => {
  it("makes a self-signed CA limited to signing end-entity certificates", () => {
    const x509 = new X509Certificate(ca.certPem);
    expect(x509.ca).toBe(true);
    expect(x509.subject).toBe("CN=netserva-mail test CA\nO=netserva-mail");
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    const days = (x509.validToDate.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);

    const cert = forge.pki.certificateFromPem(ca.certPem);
    expect(cert.getExtension("basicConstraints")).toMatchObject({ cA: true, pathLenConstraint: 0, critical: true });
    expect(cert.getExtension("keyUsage")).toMatchObject({ keyCertSign: true, cRLSign: true, critical: true });
    expect(cert.getExtension("subjectKeyIdentifier")).toMatchObject({
      subjectKeyIdentifier: cert.generateSubjectKeyIdentifier().toHex(),
    });
    expect(ca.keyPem).toContain("-----BEGIN PRIVATE KEY-----");
  });

  it("refuses a bad name, lifetime or key size", async () => {
    await expect(createCertificateAuthority({ commonName: "", validDays: 1 })).rejects.toMatchObject({
      field: "commonName",
    });
    await expect(createCertificateAuthority({ commonName: "ca\n", validDays: 1 })).rejects.toMatchObject({
      field: "commonName",
    });
    await expect(createCertificateAuthority({ commonName: "ca", validDays: 0 })).rejects.toMatchObject({
      field: "validDays",
    });
    await expect(createCertificateAuthority({ commonName: "ca", validDays: 1, keyBits: 1024 })).rejects.toMatchObject({
      field: "keyBits",
    });
  });
});

describe("issueCertificate", () => {
  it("issues an agent certificate from a CSR: role and identity in SANs, usable for server and client auth", () => {
    const issued = issue({ dnsNames: ["MX1.Example.NET", "mx1"], ipAddresses: ["192.0.2.10", "2001:db8::1"] });
    const x509 = new X509Certificate(issued.certPem);
    const caX509 = new X509Certificate(ca.certPem);
    expect(x509.subjectAltName).toBe(
      "URI:netserva-mail://agent/mx1, DNS:mx1, DNS:mx1.example.net, IP Address:192.0.2.10, IP Address:2001:DB8:0:0:0:0:0:1",
    );
    expect(x509.subject).toBe("CN=mx1\nOU=agent");
    expect(x509.issuer).toBe(caX509.subject);
    expect(x509.ca).toBe(false);
    expect(x509.verify(caX509.publicKey)).toBe(true);
    expect(x509.checkIssued(caX509)).toBe(true);
    expect(x509.checkHost("mx1")).toBe("mx1");
    expect(x509.checkHost("mx1.example.net")).toBe("mx1.example.net");
    expect(x509.checkHost("mx2")).toBeUndefined();
    expect(x509.checkIP("192.0.2.10")).toBe("192.0.2.10");
    expect(x509.keyUsage).toEqual(expect.arrayContaining([SERVER_AUTH, CLIENT_AUTH]));
    // The certificate carries the CSR's key, not any other.
    expect(x509.publicKey.export({ type: "spki", format: "pem" })).toBe(
      createPublicKey(key(0)).export({ type: "spki", format: "pem" }),
    );
    expect(x509.serialNumber.toLowerCase()).toBe(issued.serialHex);
    expect(x509.validToDate).toEqual(issued.notAfter);
    expect(x509.validFromDate).toEqual(issued.notBefore);
    expect(issued.notAfter.getTime() - issued.notBefore.getTime()).toBe((3600 + 60) * 1000);

    // Extensions a strict verifier looks at, read back with forge.
    const cert = forge.pki.certificateFromPem(issued.certPem);
    expect(cert.getExtension("basicConstraints")).toMatchObject({ cA: false, critical: true });
    expect(cert.getExtension("keyUsage")).toMatchObject({
      digitalSignature: true,
      keyEncipherment: true,
      keyCertSign: false,
    });
    const caSki = (
      forge.pki.certificateFromPem(ca.certPem).getExtension("subjectKeyIdentifier") as { subjectKeyIdentifier: string }
    ).subjectKeyIdentifier;
    const aki = forge.asn1.fromDer((cert.getExtension("authorityKeyIdentifier") as { value: string }).value);
    expect(forge.util.bytesToHex((aki.value as forge.asn1.Asn1[])[0]?.value as string)).toBe(caSki);
  });

  it("issues a controller certificate: controller URI, DNS names only when asked", () => {
    const issued = issue({ role: "controller", identity: "ctl1", publicKeyPem: key(1), csrPem: undefined });
    const x509 = new X509Certificate(issued.certPem);
    expect(x509.subjectAltName).toBe("URI:netserva-mail://controller/ctl1");
    expect(x509.subject).toBe("CN=ctl1\nOU=controller");
    expect(inspectCertificate(issued.certPem)).toMatchObject({ role: "controller", identity: "ctl1", dnsNames: [] });
  });

  it("ignores the role, names and extensions a CSR asks for", () => {
    const greedy = handMadeCsr({
      publicKeyPem: key(1),
      signWith: key(1),
      subject: [
        { shortName: "CN", value: "ctl1" },
        { shortName: "OU", value: "controller" },
      ],
      sanUris: ["netserva-mail://controller/ctl1"],
    });
    const x509 = new X509Certificate(issue({ csrPem: greedy }).certPem);
    expect(x509.subjectAltName).toBe("URI:netserva-mail://agent/mx1, DNS:mx1");
    expect(x509.subject).toBe("CN=mx1\nOU=agent");
    expect(x509.ca).toBe(false);
    expect(inspectCertificate(x509.toString())).toMatchObject({ role: "agent", identity: "mx1" });
  });

  it("refuses a CSR whose signature was not made by its own key", () => {
    const forged = handMadeCsr({
      publicKeyPem: key(1),
      signWith: key(0),
      subject: [{ shortName: "CN", value: "mx1" }],
    });
    expect(refusal(() => issue({ csrPem: forged })).message).toMatch(/signature does not verify/);

    // A valid CSR with one bit of its signature flipped.
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    expectInvalid(() => issue({ csrPem: tampered }), "csr");
  });

  it("refuses garbage where a CSR should be, without crashing", () => {
    const truncated = csrPem.slice(0, 200) + "\n-----END CERTIFICATE REQUEST-----\n";
    for (const bad of [
      "",
      "hello",
      ca.certPem,
      truncated,
      "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----",
      "x".repeat(100_000),
    ]) {
      expectInvalid(() => issue({ csrPem: bad }), "csr");
    }
    expectInvalid(() => issue({ csrPem: undefined }), "csr"); // neither CSR nor key
    expectInvalid(() => issue({ publicKeyPem: key(1) }), "csr"); // both
    expectInvalid(() => issue({ csrPem: undefined, publicKeyPem: "not a key" }), "publicKeyPem");
  });

  it("refuses bad role, identity, names and lifetimes", () => {
    expectInvalid(() => issue({ role: "operator" as "agent" }), "role");
    for (const identity of ["", "MX1", "mx 1", "-mx", "mx1/../ctl", "a".repeat(64), "mx1."]) {
      expectInvalid(() => issue({ identity }), "identity");
    }
    expectInvalid(() => issue({ dnsNames: ["bad name"] }), "dnsNames");
    expectInvalid(() => issue({ ipAddresses: ["300.1.1.1"] }), "ipAddresses");
    expectInvalid(() => issue({ validSeconds: 0 }), "validSeconds");
    expectInvalid(() => issue({ validSeconds: 1.5 }), "validSeconds");
    expectInvalid(() => issue({ notBefore: new Date(Number.NaN) }), "notBefore");
  });

  it("refuses a CA key that does not match the CA certificate, and a leaf posing as CA", () => {
    expectInvalid(() => issue({ caKeyPem: otherCa.keyPem }), "caKeyPem");
    expectInvalid(() => issue({ caKeyPem: "garbage" }), "caKeyPem");
    const leaf = issue();
    expectInvalid(() => issue({ caCertPem: leaf.certPem, caKeyPem: key(0) }), "caCertPem");
    expectInvalid(() => issue({ caCertPem: "garbage" }), "caCertPem");
  });

  it("makes an already expired certificate when given a past notBefore", () => {
    const notBefore = new Date(Date.now() - 2 * 86_400_000);
    const issued = issue({ notBefore, validSeconds: 3600 });
    const x509 = new X509Certificate(issued.certPem);
    expect(x509.validFromDate.getTime()).toBe(Math.floor(notBefore.getTime() / 1000) * 1000);
    expect(x509.validToDate.getTime()).toBeLessThan(Date.now());
    expect(issued.notAfter).toEqual(x509.validToDate);
    expect(x509.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
  });

  it("never outlives the CA", async () => {
    const shortCa = await createCertificateAuthority({ commonName: "short CA", validDays: 1, keyPem: key(1) });
    const issued = issueCertificate({
      caKeyPem: shortCa.keyPem,
      caCertPem: shortCa.certPem,
      csrPem,
      role: "agent",
      identity: "mx1",
      validSeconds: 10 * 86_400,
    });
    expect(issued.notAfter).toEqual(new X509Certificate(shortCa.certPem).validToDate);
  });

  it("gives unique, positive, fixed-width serials", () => {
    const serials = Array.from({ length: 25 }, () => issue().serialHex);
    expect(new Set(serials).size).toBe(serials.length);
    for (const serial of serials) expect(serial).toMatch(/^[4-7][0-9a-f]{31}$/);
    const many = new Set(Array.from({ length: 10_000 }, randomSerialHex));
    expect(many.size).toBe(10_000);
    expect([...many].every((serial) => /^[4-7][0-9a-f]{31}$/.test(serial))).toBe(true);
  });
});

describe("inspectCertificate", () => {
  it("reads role, identity, names, dates and key hash; the same from PEM and DER", () => {
    const issued = issue({ dnsNames: ["mx1.example.net"], ipAddresses: ["192.0.2.10"] });
    const x509 = new X509Certificate(issued.certPem);
    const info = inspectCertificate(issued.certPem);
    expect(info).toEqual({
      serialHex: issued.serialHex,
      subjectCN: "mx1",
      issuerCN: "netserva-mail test CA",
      role: "agent",
      identity: "mx1",
      dnsNames: ["mx1", "mx1.example.net"],
      ipAddresses: ["192.0.2.10"],
      uris: ["netserva-mail://agent/mx1"],
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      isCA: false,
      spkiSha256: createHash("sha256")
        .update(x509.publicKey.export({ type: "spki", format: "der" }))
        .digest("hex"),
    });
    expect(inspectDer(x509.raw)).toEqual(info);
    expect(inspectCertificate(ca.certPem)).toMatchObject({
      role: undefined,
      identity: undefined,
      isCA: true,
      subjectCN: "netserva-mail test CA",
    });
  });

  it("refuses garbage as invalid certificate", () => {
    for (const bad of ["", "garbage", csrPem, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"]) {
      expectInvalid(() => inspectCertificate(bad), "certificate");
    }
    expectInvalid(() => inspectDer(Buffer.from("not der")), "certificate");
    expectInvalid(() => inspectDer(Buffer.alloc(0)), "certificate");
  });

  it("is not fooled by a SAN value that contains a comma", () => {
    // Node JSON-quotes such values; a naive split would see a second, forged DNS entry.
    expect(parseSubjectAltName('URI:"netserva-mail://agent/a\\u002c DNS:evil", DNS:b')).toEqual([
      { type: "URI", value: "netserva-mail://agent/a, DNS:evil" },
      { type: "DNS", value: "b" },
    ]);
  });
});

describe("verifyIssuedBy and self-signed certificates", () => {
  it("accepts what the CA signed and nothing else", async () => {
    const issued = issue();
    expect(verifyIssuedBy(issued.certPem, ca.certPem)).toBe(true);
    expect(verifyIssuedBy(new X509Certificate(issued.certPem).raw, ca.certPem)).toBe(true);
    expect(verifyIssuedBy(issued.certPem, otherCa.certPem)).toBe(false);

    const fake = await createSelfSigned({
      role: "controller",
      identity: "ctl1",
      commonName: "netserva-mail test CA",
      keyPem: key(1),
    });
    expect(inspectCertificate(fake.certPem)).toMatchObject({ role: "controller", identity: "ctl1" }); // reading is not trusting
    expect(verifyIssuedBy(fake.certPem, ca.certPem)).toBe(false);
    expect(verifyIssuedBy(fake.certPem, fake.certPem)).toBe(false); // not a CA
  });
});

describe("CA pin", () => {
  it("is the SHA-256 of the CA's DER SubjectPublicKeyInfo", () => {
    const expected = createHash("sha256")
      .update(new X509Certificate(ca.certPem).publicKey.export({ type: "spki", format: "der" }))
      .digest("hex");
    const pin = caPin(ca.certPem);
    expect(pin).toBe(`sha256:${expected}`);
    expect(caPin(new X509Certificate(ca.certPem).raw)).toBe(pin);
    expect(matchesPin(ca.certPem, pin)).toBe(true);
    expect(matchesPin(new X509Certificate(ca.certPem).raw, pin.toUpperCase().replace("SHA256", "sha256"))).toBe(true);
    expect(matchesPin(otherCa.certPem, pin)).toBe(false);
    expectInvalid(() => matchesPin(ca.certPem, "sha256:abc"), "caPin");
    expectInvalid(() => matchesPin(ca.certPem, expected), "caPin");
    expectInvalid(() => caPin("garbage"), "caCertPem");
  });
});
