// When certificates are renewed: the controller's and an agent's once less than a third of the
// lifetime they were issued with is left;
// a CA-issued mail TLS certificate 30 days before expiry, or a third of a shorter lifetime (so a
// short test lifetime is not renewed on every push), never an operator's.
import { describe, expect, it } from "vitest";
import { createCertificateAuthority, issueCertificate } from "../../common/pki/ca.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { CLOCK_SKEW_SECONDS, renewalPoint } from "../../common/pki/validity.ts";
import { renewalDelay } from "../../agent/enroll/renewal.ts";
import { controllerCertificateDue, controllerRenewAt } from "../../controller/pki/controller-certificate.ts";
import { MAIL_TLS_RENEW_BEFORE_MS, mailTlsDue, mailTlsRenewBeforeMs } from "../../controller/pki/mail-tls.ts";

const DAY = 86_400_000;

describe("certificate renewal thresholds", () => {
  it("the controller's certificate is due at two thirds of its lifetime from issue, not before", async () => {
    const ca = await createCertificateAuthority({ commonName: "test CA", validDays: 30 });
    const { csrPem } = await createKeyAndCsr({ commonName: "controller" });
    const issue = (validSeconds: number) =>
      issueCertificate({
        caKeyPem: ca.keyPem,
        caCertPem: ca.certPem,
        csrPem,
        role: "controller",
        identity: "controller",
        validSeconds,
      });
    const issued = issue(9 * 86_400);
    const { notBefore, notAfter } = inspectCertificate(issued.certPem);
    // Issued "now", backdated a minute for clock skew: that minute is not lifetime.
    expect(notAfter.getTime() - notBefore.getTime()).toBe(9 * DAY + CLOCK_SKEW_SECONDS * 1000);
    const renewAt = controllerRenewAt(issued.certPem);
    expect(renewAt.getTime()).toBe(notAfter.getTime() - 3 * DAY);
    expect(controllerCertificateDue(issued.certPem, renewAt.getTime() - 1000)).toBe(false);
    expect(controllerCertificateDue(issued.certPem, renewAt.getTime())).toBe(true);
    // A short test lifetime is not due the moment it is issued (it was, counting the minute in).
    const short = inspectCertificate(issue(30).certPem);
    expect(renewalPoint(short.notBefore, short.notAfter).getTime()).toBe(short.notAfter.getTime() - 10_000);
    expect(renewalDelay(short.notBefore, short.notAfter, short.notAfter.getTime() - 30_000)).toBe(20_000);
  });

  it("mail TLS: 30 days before expiry at the default lifetime, a third of a shorter one", () => {
    expect(mailTlsRenewBeforeMs({})).toBe(MAIL_TLS_RENEW_BEFORE_MS);
    expect(mailTlsRenewBeforeMs({ lifetimeSeconds: 45 })).toBe(15_000);
    const now = Date.now();
    const row = (leftMs: number, source = "ca") => ({
      source,
      hostname: "mail.a.test",
      notAfter: new Date(now + leftMs),
    });
    expect(mailTlsDue(row(31 * DAY), "mail.a.test", now)).toBe(false);
    expect(mailTlsDue(row(30 * DAY), "mail.a.test", now)).toBe(true);
    expect(mailTlsDue(row(20_000), "mail.a.test", now, 15_000)).toBe(false);
    expect(mailTlsDue(row(15_000), "mail.a.test", now, 15_000)).toBe(true);
    expect(mailTlsDue(row(31 * DAY), "mail.b.test", now)).toBe(true); // host name changed
    expect(mailTlsDue(row(1000, "operator"), "mail.a.test", now)).toBe(false);
    expect(mailTlsDue(null, "mail.a.test", now)).toBe(true);
  });
});
