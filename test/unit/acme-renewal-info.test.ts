// ACME renewal information (RFC 9773) and "wait" answers, without a server: the certificate ID of
// the RFC's own example (AKI 69:88:5B:…, serial 0x87654321 whose DER has a leading zero octet) is
// read from a real certificate made by openssl; a renewal time is drawn inside the window (now
// when the window is past); Retry-After is read in both of its forms.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { certificateId, renewalInWindow } from "../../controller/acme/acme-renewal-info.ts";
import { retryAfterOf } from "../../controller/acme/acme-http.ts";

function selfSigned(serial: string, keyId: string | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), "nsm-ari-"));
  try {
    const ext = keyId
      ? ["-addext", `subjectKeyIdentifier=${keyId}`, "-addext", "authorityKeyIdentifier=keyid:always"]
      : ["-addext", "subjectKeyIdentifier=none", "-addext", "authorityKeyIdentifier=none"];
    execFileSync(
      "/usr/bin/openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=ari.example",
        "-set_serial",
        serial,
        ...ext,
        "-keyout",
        join(dir, "k.pem"),
        "-out",
        join(dir, "c.pem"),
      ],
      { stdio: "ignore" },
    );
    return readFileSync(join(dir, "c.pem"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("ACME renewal information", () => {
  it("computes the certificate ID of RFC 9773's example", () => {
    const pem = selfSigned("0x87654321", "69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4");
    expect(certificateId(pem)).toBe("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
  });

  it("keeps a serial without a leading zero as it is, and has no ID without an AKI", () => {
    const pem = selfSigned("0x1234", "01:02:03:04");
    expect(certificateId(pem)).toBe("AQIDBA.EjQ");
    expect(certificateId(selfSigned("0x1234", undefined))).toBeUndefined();
  });

  it("draws the renewal time inside the window, or now when the window is past", () => {
    const now = new Date("2026-06-01T00:00:00Z");
    const window = { start: new Date("2026-06-10T00:00:00Z"), end: new Date("2026-06-12T00:00:00Z") };
    expect(renewalInWindow(window, now, () => 0).toISOString()).toBe("2026-06-10T00:00:00.000Z");
    expect(renewalInWindow(window, now, () => 0.5).toISOString()).toBe("2026-06-11T00:00:00.000Z");
    const past = { start: new Date("2026-05-01T00:00:00Z"), end: new Date("2026-05-02T00:00:00Z") };
    expect(renewalInWindow(past, now, () => 0.7).getTime()).toBe(now.getTime());
  });

  it("reads Retry-After as seconds or as an HTTP date, and ignores anything else", () => {
    const now = new Date("2026-06-01T00:00:00Z");
    expect(retryAfterOf({ "retry-after": "120" }, now)?.toISOString()).toBe("2026-06-01T00:02:00.000Z");
    expect(retryAfterOf({ "retry-after": "Wed, 03 Jun 2026 10:00:00 GMT" }, now)?.toISOString()).toBe(
      "2026-06-03T10:00:00.000Z",
    );
    expect(retryAfterOf({ "retry-after": "soon" }, now)).toBeUndefined();
    expect(retryAfterOf({}, now)).toBeUndefined();
  });
});
