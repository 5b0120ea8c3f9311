// SNI on the mail ports (issue 15): a hosted domain with its own mail host name (mail.<domain>)
// gets its certificate from the named-certificate map on SMTP 25 and 587 (STARTTLS), 465 and
// IMAPS 993; any other name gets the vnode's mail certificate. Real Postfix and Dovecot in a
// namespace, configs checked by their own checkers on apply, clients that send SNI and verify.
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema, type DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { createTestCa, type TestCa } from "../helpers/mail-tls.ts";
import { MAIL_HOSTNAME, createMailVnode, hashPassword, type MailVnode } from "../helpers/mail-vnode.ts";
import { servedFingerprint, type ServedCertTarget } from "../helpers/served-cert.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");
const D = "sni-own.test";
const OWN = `mail.${D}`;

let v: MailVnode;
let ca: TestCa;
let hash: string;

function stateWith(pair: { chainPem: string; keyPem: string } | undefined, generation: bigint): DesiredState {
  return create(DesiredStateSchema, {
    generation,
    settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [] },
    tls: { certificateChainPem: v.tls.certChainPem, privateKeyPem: v.tls.keyPem },
    domains: [{ domain: D, active: true }],
    mailboxes: [{ address: `alice@${D}`, passwordHash: hash, active: true }],
    certificates: pair
      ? [{ names: [OWN, `*.${D}`], certificateChainPem: pair.chainPem, privateKeyPem: pair.keyPem, issuer: "acme" }]
      : [],
  });
}

const fp = (chainPem: string): string => new X509Certificate(chainPem).fingerprint256;

const targets = (servername: string): Array<[string, ServedCertTarget]> => {
  const base = { host: v.ns.nsAddress, ca: `${v.tls.caPem}${ca.caPem}`, servername };
  return [
    ["smtp 25", { ...base, port: 25, starttls: "smtp" }],
    ["submission 587", { ...base, port: 587, starttls: "smtp" }],
    ["submissions 465", { ...base, port: 465 }],
    ["imaps 993", { ...base, port: 993 }],
  ];
};

async function presented(servername: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, t] of targets(servername)) out[name] = await servedFingerprint(t);
  return out;
}

const all = (value: string): Record<string, string> =>
  Object.fromEntries(["smtp 25", "submission 587", "submissions 465", "imaps 993"].map((k) => [k, value]));

describe.skipIf(!canRun)("SNI on the mail ports", () => {
  beforeAll(async () => {
    v = await createMailVnode("sni");
    ca = await createTestCa();
    hash = await hashPassword("alice-Secret-1");
  });

  afterAll(async () => {
    await v?.teardown();
    ca?.dispose();
  });

  it("the domain's own name gets its certificate on 25, 587, 465 and 993; other names the mail one; a new one after a change", async () => {
    const first = await ca.issue([OWN, `*.${D}`]);
    await v.host.applyState(stateWith(first, 1n));
    await v.host.start();
    const mailFp = fp(v.tls.certChainPem);
    expect(await presented(OWN)).toEqual(all(fp(first.chainPem)));
    // A wildcard entry covers one label on Postfix's ports (Dovecot's local_name is exact).
    for (const [name, t] of targets(`smtp.${D}`).filter(([n]) => !n.startsWith("imaps")))
      expect(await servedFingerprint(t), name).toBe(fp(first.chainPem));
    expect(await presented(MAIL_HOSTNAME)).toEqual(all(mailFp));
    // What the daemons were given, as their checkers accepted it.
    const main = readFileSync(join(v.host.paths.postfixDir, "main.cf"), "utf8");
    expect(main).toContain("tls_server_sni_maps = texthash:$config_directory/sni");
    expect(readFileSync(v.host.paths.dovecotConf, "utf8")).toContain(`local_name ${OWN} {`);

    // A renewed certificate for the name: presented after the apply, without a restart.
    const renewed = await ca.issue([OWN, `*.${D}`]);
    await v.host.applyState(stateWith(renewed, 2n));
    expect(readdirSync(v.host.paths.tlsDir).filter((f) => f.startsWith("sni-"))).toHaveLength(3);
    expect(await presented(OWN)).toEqual(all(fp(renewed.chainPem)));

    // The entry removed: the name falls back to the mail certificate (which does not name it, so
    // the client is asked not to verify; the fingerprint says which one came).
    await v.host.applyState(stateWith(undefined, 3n));
    const unverified: Record<string, string> = {};
    for (const [name, t] of targets(OWN))
      unverified[name] = await servedFingerprint({ ...t, rejectUnauthorized: false });
    expect(unverified).toEqual(all(mailFp));
    expect(readFileSync(join(v.host.paths.postfixDir, "main.cf"), "utf8")).not.toContain("tls_server_sni_maps");
    // No key of a certificate the state dropped stays behind.
    expect(readdirSync(v.host.paths.tlsDir).filter((f) => f.startsWith("sni-"))).toEqual([]);
  });
});
