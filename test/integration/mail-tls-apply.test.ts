// TLS files and daemon configs are one apply unit (issue 10): a state whose daemon config the
// checker refuses leaves the old certificate and key in place as well as the old config, and the
// daemons keep presenting the old certificate; a valid state then changes both. Real Postfix and
// Dovecot in a namespace, real TLS clients that verify against the CA that issued each cert.
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { connect as tlsConnect } from "node:tls";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema, type DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { waitUntil } from "../../agent/process.ts";
import { buildMessage, sendMail } from "../helpers/mail-smtp.ts";
import { createTestTls, type TestTls } from "../helpers/mail-tls.ts";
import { MAIL_HOSTNAME, createMailVnode, hashPassword, type MailVnode } from "../helpers/mail-vnode.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");
const D = "tls-unit.test";
const PASS = "alice-Secret-1";

let v: MailVnode;

function stateWith(tls: TestTls, hash: string): DesiredState {
  return create(DesiredStateSchema, {
    generation: 1n,
    settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [] },
    tls: { certificateChainPem: tls.certChainPem, privateKeyPem: tls.keyPem },
    domains: [{ domain: D, active: true }],
    mailboxes: [{ address: `alice@${D}`, passwordHash: hash, active: true }],
  });
}

/** The fingerprint of the certificate IMAPS presents, verified against `ca`. */
function imapsFingerprint(ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: v.ns.nsAddress, port: 993, ca, servername: MAIL_HOSTNAME }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once("error", reject);
  });
}

/** A message to alice over port 25 with STARTTLS verified against `ca`, delivered to her maildir. */
async function mailFlows(ca: string): Promise<void> {
  const msg = buildMessage({ from: "sender@remote.test", to: `alice@${D}`, subject: "tls", body: "Hi.\r\n" });
  const out = await sendMail({
    ...v.smtp(25),
    ca,
    startTls: true,
    from: "sender@remote.test",
    to: [`alice@${D}`],
    data: msg.data,
  });
  expect(out.stage).toBe("done");
  const dir = `${v.host.paths.maildir(D, "alice")}/new`;
  await waitUntil(`${msg.id} delivered`, 10_000, () =>
    existsSync(dir) ? readdirSync(dir).some((f) => readFileSync(`${dir}/${f}`, "utf8").includes(msg.id)) : false,
  );
}

const leafFingerprint = (chainPem: string): string => new X509Certificate(chainPem).fingerprint256;

describe.skipIf(!canRun)("TLS files and daemon config: one apply unit", () => {
  beforeAll(async () => {
    v = await createMailVnode("tlsunit");
    await v.host.applyState(stateWith(v.tls, await hashPassword(PASS)));
    await v.host.start();
  });

  afterAll(async () => {
    await v?.teardown();
  });

  it("a refused daemon config keeps the old TLS files too; a valid state then changes both", async () => {
    const hash = await hashPassword(PASS);
    const p = v.host.paths;
    const live = (f: string): string => readFileSync(f, "utf8");
    const before = {
      cert: live(p.tlsCert),
      key: live(p.tlsKey),
      pem: live(p.tlsKeyAndChain),
      main: live(p.postfixMainCf),
      dovecot: live(p.dovecotConf),
    };
    const oldFp = leafFingerprint(v.tls.certChainPem);
    expect(await imapsFingerprint(v.tls.caPem)).toBe(oldFp);

    const fresh = await createTestTls(MAIL_HOSTNAME, v.ns.nsAddress);
    const newFp = leafFingerprint(fresh.certChainPem);
    const broken = await v.sibling({ extraMainCf: [["netserva_no_such_parameter", "yes"]] });
    const err = await broken.applyState(stateWith(fresh, hash)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    // Postfix's own words reach the caller.
    expect(String((err as Error).message)).toContain("netserva_no_such_parameter");
    expect(String((err as Error).message)).toContain("unused parameter");

    expect(live(p.tlsCert)).toBe(before.cert);
    expect(live(p.tlsKey)).toBe(before.key);
    expect(live(p.tlsKeyAndChain)).toBe(before.pem);
    expect(live(p.postfixMainCf)).toBe(before.main);
    expect(live(p.dovecotConf)).toBe(before.dovecot);
    expect(v.host.drift()).toEqual([]);
    // The daemons still present the old certificate, and mail still flows under it.
    expect(await imapsFingerprint(v.tls.caPem)).toBe(oldFp);
    await mailFlows(v.tls.caPem);

    const ok = await v.host.applyState(stateWith(fresh, hash));
    expect(ok.diff).toEqual(
      expect.arrayContaining([`~ file ${p.tlsCert}`, `~ file ${p.tlsKey}`, `~ file ${p.tlsKeyAndChain}`]),
    );
    expect(live(p.tlsCert)).toBe(fresh.certChainPem);
    expect(live(p.tlsKey)).toBe(fresh.keyPem);
    expect(v.host.drift()).toEqual([]);
    // Dovecot reloads onto the new pair; new smtpd processes load it as they start.
    await waitUntil("IMAPS presents the new certificate", 10_000, () =>
      imapsFingerprint(fresh.caPem).then(
        (fp) => fp === newFp,
        () => false,
      ),
    );
    await mailFlows(fresh.caPem);
  });

  it("a refused state with a changed daemon config and new TLS changes neither (Dovecot's checker)", async () => {
    const hash = await hashPassword(PASS);
    const p = v.host.paths;
    const cert = readFileSync(p.tlsCert, "utf8");
    const conf = readFileSync(p.dovecotConf, "utf8");
    const fresh = await createTestTls(MAIL_HOSTNAME, v.ns.nsAddress);
    const broken = await v.sibling({ extraDovecotConf: ["no_such_dovecot_setting = 1"] });
    const err = await broken.applyState(stateWith(fresh, hash)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String((err as Error).message)).toContain("no_such_dovecot_setting");
    expect(readFileSync(p.tlsCert, "utf8")).toBe(cert);
    expect(readFileSync(p.dovecotConf, "utf8")).toBe(conf);
    expect(v.host.drift()).toEqual([]);
  });

  // The agent's bind check (agent/mail/bind-check.ts) finds it first while Postfix runs; Postfix's
  // own check (which says it only to syslog) when it does not. Either way, words and nothing changed.
  it("a listen address the vnode lacks is refused, naming the address, and nothing changes", async () => {
    const main = readFileSync(v.host.paths.postfixMainCf, "utf8");
    const elsewhere = await v.sibling({ listen: ["192.0.2.77"] });
    const err = await elsewhere.applyState(stateWith(v.tls, await hashPassword(PASS))).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String((err as Error).message)).toMatch(
      /no local interface found for 192\.0\.2\.77|bind 192\.0\.2\.77 port 25 \(postfix smtp\): listen EADDRNOTAVAIL/,
    );
    expect(readFileSync(v.host.paths.postfixMainCf, "utf8")).toBe(main);
  });
});
