// When ACME certificates are renewed and failed orders retried: at 2/3 of the lifetime; retries
// double from the configured first wait up to the cap. The CA never replaces a valid ACME
// certificate for the current host name, only one that expired or no longer names the host.
import { describe, expect, it } from "vitest";
import { renewalAt, retryAt } from "../../controller/acme/acme-schedule.ts";
import {
  parseAcmeEmail,
  parseAcmeServer,
  LETS_ENCRYPT,
  LETS_ENCRYPT_STAGING,
} from "../../controller/acme/acme-server.ts";
import { mailTlsDue } from "../../controller/pki/mail-tls.ts";

const DAY = 86_400_000;

describe("ACME schedule", () => {
  it("renews at two thirds of the lifetime", () => {
    const notBefore = new Date("2026-01-01T00:00:00Z");
    expect(renewalAt(notBefore, new Date(notBefore.getTime() + 90 * DAY)).toISOString()).toBe(
      "2026-03-02T00:00:00.000Z",
    );
    expect(renewalAt(notBefore, new Date(notBefore.getTime() + 90_000)).getTime()).toBe(notBefore.getTime() + 60_000);
  });

  it("backs off exponentially from the first wait, capped", () => {
    const now = new Date(0);
    const policy = { retryMs: 300_000, maxMs: 6 * 3600_000 };
    expect([1, 2, 3, 4, 7, 8, 50].map((n) => retryAt(now, n, policy).getTime() / 60_000)).toEqual([
      5, 10, 20, 40, 320, 360, 360,
    ]);
  });

  it("the CA leaves a valid ACME certificate alone; replaces an expired one or one for another name", () => {
    const now = Date.now();
    const acme = (leftMs: number, hostname = "mail.a.test") => ({
      source: "acme",
      hostname,
      notAfter: new Date(now + leftMs),
    });
    expect(mailTlsDue(acme(60_000), "mail.a.test", now)).toBe(false);
    expect(mailTlsDue(acme(DAY), "mail.a.test", now, 30 * DAY)).toBe(false);
    expect(mailTlsDue(acme(-1), "mail.a.test", now)).toBe(true);
    expect(mailTlsDue(acme(DAY, "mail.old.test"), "mail.a.test", now)).toBe(true);
  });

  it("refuses servers and e-mail addresses it cannot use, naming the field", () => {
    expect(parseAcmeServer(undefined, undefined)).toBe(LETS_ENCRYPT);
    expect(parseAcmeServer(undefined, true)).toBe(LETS_ENCRYPT_STAGING);
    expect(() => parseAcmeServer("http://acme.test/dir", undefined)).toThrow(/^server: must be an https/);
    expect(() => parseAcmeServer("https://u:p@acme.test/dir", undefined)).toThrow(/^server: must not carry/);
    expect(() => parseAcmeServer("https://acme.test/dir", true)).toThrow(/^server: give --server or --staging/);
    expect(() => parseAcmeServer("not a url", undefined)).toThrow(/^server: 'not a url' is not a URL/);
    expect(parseAcmeEmail("ops@example.com")).toBe("ops@example.com");
    expect(parseAcmeEmail(undefined)).toBeNull();
    expect(() => parseAcmeEmail("ops at example")).toThrow(/^email: /);
  });
});
