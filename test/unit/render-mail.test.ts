// Postfix and Dovecot renderers: the settings that make the mail host safe are present, the
// output is stable, overrides cannot inject lines, and the daemons' own parsers accept it.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { createVnodePaths } from "../../agent/paths.ts";
import { renderPostfix } from "../../agent/postfix/render.ts";
import { renderMainCf } from "../../agent/postfix/render-main-cf.ts";
import { renderMasterCf } from "../../agent/postfix/render-master-cf.ts";
import { renderDovecot } from "../../agent/dovecot/render.ts";
import { renderDovecotConf } from "../../agent/dovecot/render-conf.ts";
import { renderDovecotSql } from "../../agent/dovecot/render-sql.ts";
import { renderTlsFiles } from "../../agent/mail/tls-files.ts";
import { create } from "@bufbuild/protobuf";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { TlsMaterialSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { createCertificateAuthority } from "../../common/pki/ca.ts";
import { issueServerCertificate } from "../../common/pki/server-cert.ts";

const paths = createVnodePaths("/vn/one");
const pf = { paths, mailHostname: "mail.example.com", listenAddresses: ["10.1.2.3"], rspamdEnabled: false };
const dc = { paths, mailHostname: "mail.example.com", listenAddresses: ["10.1.2.3"], vmailUid: 999, vmailGid: 995 };
const param = (cf: string, name: string): string | undefined => new RegExp(`^${name} = (.*)$`, "m").exec(cf)?.[1];

describe("postfix render", () => {
  it("main.cf: private dirs, virtual-only delivery over LMTP, RCPT-time refusal, SASL via Dovecot", () => {
    const cf = renderMainCf(pf);
    expect(param(cf, "queue_directory")).toBe("/vn/one/var/spool/postfix");
    expect(param(cf, "data_directory")).toBe("/vn/one/var/lib/postfix");
    expect(param(cf, "meta_directory")).toBe("/vn/one/etc/postfix");
    expect(param(cf, "inet_interfaces")).toBe("10.1.2.3");
    expect(param(cf, "inet_protocols")).toBe("ipv4");
    expect(param(cf, "myhostname")).toBe("mail.example.com");
    expect(param(cf, "mydestination")).toBe("");
    expect(param(cf, "virtual_transport")).toBe("lmtp:unix:/vn/one/run/dovecot/lmtp");
    expect(param(cf, "virtual_mailbox_maps")).toBe("sqlite:$config_directory/sqlite-virtual-mailboxes.cf");
    expect(param(cf, "virtual_alias_maps")).toContain("sqlite-virtual-mailbox-self.cf");
    expect(param(cf, "smtpd_reject_unlisted_recipient")).toBe("yes");
    expect(param(cf, "smtpd_relay_restrictions")).toBe(
      "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    );
    expect(param(cf, "smtpd_sasl_path")).toBe("/vn/one/run/dovecot/auth-postfix");
    expect(param(cf, "maillog_file")).toBe("/vn/one/var/log/netserva-mail/postfix.log");
    expect(param(cf, "smtpd_milters")).toBeUndefined();
    const names = [...cf.matchAll(/^(\w+) =/gm)].map((m) => m[1]);
    expect(new Set(names).size).toBe(names.length);
  });

  it("main.cf: SMTP smuggling defences (CVE-2023-51764) and local submission for root, postfix and vmail only", () => {
    const cf = renderMainCf({ ...pf, submitUsers: ["root", "postfix", "vmail"] });
    expect(param(cf, "smtpd_forbid_bare_newline")).toBe("normalize");
    expect(param(cf, "smtpd_forbid_bare_newline_exclusions")).toBe("$mynetworks");
    expect(param(cf, "smtpd_forbid_unauth_pipelining")).toBe("yes");
    expect(param(cf, "authorized_submit_users")).toBe("root, postfix, vmail");
    expect(param(cf, "authorized_mailq_users")).toBe("root");
    expect(param(cf, "authorized_flush_users")).toBe("root");
    expect(param(renderMainCf(pf), "authorized_submit_users")).toBe("root, postfix");
    expect(() => renderMainCf({ ...pf, submitUsers: ["static:anyone"] })).toThrow(/unsafe submit user/);
  });

  it("renders milters only when rspamd is enabled, and needs the address then", () => {
    const cf = renderMainCf({ ...pf, rspamdEnabled: true, milterAddress: "inet:127.0.0.1:11332" });
    expect(param(cf, "smtpd_milters")).toBe("inet:127.0.0.1:11332");
    expect(param(cf, "non_smtpd_milters")).toBe("inet:127.0.0.1:11332");
    expect(() => renderMainCf({ ...pf, rspamdEnabled: true })).toThrow(/milter address/);
  });

  it("overrides replace in place and cannot inject extra lines", () => {
    const cf = renderMainCf({ ...pf, extraMainCf: [["smtpd_tls_loglevel", "2"]] });
    expect(cf.match(/^smtpd_tls_loglevel/gm)).toHaveLength(1);
    expect(param(cf, "smtpd_tls_loglevel")).toBe("2");
    expect(() => renderMainCf({ ...pf, extraMainCf: [["x", "1\nrelayhost = evil"]] })).toThrow(/unsafe/);
  });

  it("master.cf: nothing chrooted, submission requires TLS, smtps wraps TLS, sender bound to login", () => {
    const m = renderMasterCf();
    const services = m.split("\n").filter((l) => /^\w/.test(l));
    expect(services.length).toBeGreaterThan(20);
    for (const line of services) expect(line.split(/\s+/)[4]).toBe("n");
    expect(m).toMatch(/^submission inet[\s\S]*?smtpd_tls_security_level=encrypt/m);
    expect(m).toMatch(/^smtps[\s\S]*?smtpd_tls_wrappermode=yes/m);
    expect(m).toContain("reject_sender_login_mismatch");
  });

  it("TLS: Postfix takes key and chain from one file, so one rename swaps both (an smtpd started between two renames met a mismatched pair and disabled TLS)", async () => {
    const cf = renderMainCf(pf);
    expect(param(cf, "smtpd_tls_chain_files")).toBe(paths.tlsKeyAndChain);
    expect(param(cf, "smtpd_tls_cert_file")).toBeUndefined();
    expect(param(cf, "smtpd_tls_key_file")).toBeUndefined();
    const ca = await createCertificateAuthority({ commonName: "render test CA", validDays: 1, keyBits: 2048 });
    const leaf = await issueServerCertificate({
      caKeyPem: ca.keyPem,
      caCertPem: ca.certPem,
      dnsNames: ["mail.example.com"],
      validSeconds: 3600,
    });
    const files = renderTlsFiles(
      paths,
      create(TlsMaterialSchema, {
        certificateChainPem: `${leaf.certPem.trimEnd()}\n${ca.certPem}`,
        privateKeyPem: leaf.keyPem,
      }),
    );
    const combined = files.get(paths.tlsKeyAndChain);
    expect(combined?.mode).toBe(0o600);
    // Key first, then the leaf, then the rest of the chain (Postfix's order).
    const blocks = combined?.content.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g) ?? [];
    expect(blocks).toHaveLength(3);
    expect(blocks[0]).toMatch(/PRIVATE KEY/);
    expect(new X509Certificate(blocks[1] ?? "").checkPrivateKey(createPrivateKey(blocks[0] ?? ""))).toBe(true);
    expect(new X509Certificate(blocks[2] ?? "").subject).toContain("render test CA");
    // Dovecot keeps its two files (read only when it reloads, after both are in place).
    expect(files.get(paths.tlsKey)?.mode).toBe(0o600);
    expect(files.get(paths.tlsCert)?.content).toContain("BEGIN CERTIFICATE");
  });

  it("map files query only active rows of active domains, against the lookup DB", () => {
    const files = renderPostfix(pf);
    const mailboxes = files.get(paths.postfixMap("virtual-mailboxes"))?.content ?? "";
    expect(mailboxes).toContain(`dbpath = ${paths.lookupDb}`);
    expect(mailboxes).toMatch(/m\.active = 1 AND d\.active = 1/);
    expect(files.get(paths.postfixMap("sender-login"))?.content).toContain("NOT LIKE '@%%'");
  });
});

describe("dovecot render", () => {
  it("dovecot.conf: private dirs, TLS required, sockets for Postfix, quota and sieve", () => {
    const c = renderDovecotConf(dc);
    expect(c).toContain("base_dir = /vn/one/run/dovecot");
    expect(c).toContain(`instance_name = ${paths.dovecotInstanceName}`);
    expect(c).toContain("ssl = required");
    expect(c).toContain("disable_plaintext_auth = yes");
    expect(c).toContain("first_valid_uid = 999");
    expect(c).toContain("mail_location = maildir:~/Maildir");
    expect(c).toMatch(/unix_listener lmtp \{\n\s+user = postfix/);
    expect(c).toMatch(/unix_listener auth-postfix \{\n\s+user = postfix/);
    expect(c).toContain('quota_status_overquota = "552 5.2.2 Mailbox is full"');
    expect(c).toContain(`sieve_before = ${paths.dovecotSieveBefore}`);
    expect(c).not.toContain("anvil-auth-penalty");
    expect(renderDovecotConf({ ...dc, authPenalty: false })).toContain("anvil-auth-penalty");
  });

  it("dovecot.conf: no login or imap process started ahead (one would be killed mid-handshake by a reload)", () => {
    const c = renderDovecotConf(dc);
    expect(c).not.toContain("process_min_avail");
    expect(c).not.toContain("service_count");
  });

  it("dovecot.conf: a login's user fields come from its passdb row (prefetch), the sql userdb serves the rest", () => {
    const c = renderDovecotConf(dc);
    const prefetch = c.indexOf("userdb {\n  driver = prefetch\n}");
    const sql = c.indexOf("userdb {\n  driver = sql\n");
    expect(prefetch).toBeGreaterThan(-1);
    expect(sql).toBeGreaterThan(prefetch);
    // The passdb row carries every field the sql userdb gives, so a prefetched login lacks none.
    const sqlConf = renderDovecotSql("/vn/one/lookup.db");
    for (const field of ["home", "uid", "gid", "quota_rule"]) {
      expect(sqlConf).toMatch(new RegExp(`password_query = .* AS userdb_${field}[ ,]`));
      expect(sqlConf).toMatch(new RegExp(`user_query = .* AS ${field}[ ,]`));
    }
  });

  it("sql file: sqlite driver, active rows only, quota rule from the row", () => {
    const s = renderDovecotSql("/vn/one/var/lib/netserva-mail/sysadm.db");
    expect(s).toContain("driver = sqlite");
    expect(s).toMatch(/password_query = .*m\.active = 1 AND d\.active = 1/);
    expect(s).toContain("'*:bytes=' || m.quota");
  });

  it("refuses values that would open a block or a new line", () => {
    expect(() => renderDovecotConf({ ...dc, mailHostname: "x\nssl = no" })).toThrow(/unsafe/);
    expect(() => renderDovecotConf({ ...dc, extraConf: ["service x {"] })).toThrow(/unsafe/);
  });
});

describe.skipIf(!existsSync("/usr/bin/doveconf") || !existsSync("/usr/sbin/postconf"))(
  "the daemons' own parsers accept the output",
  () => {
    it("doveconf -n and postconf -n are silent", () => {
      const root = mkdtempSync(join(tmpdir(), "render-"));
      try {
        const p = createVnodePaths(root);
        const files = new Map([...renderDovecot({ ...dc, paths: p }), ...renderPostfix({ ...pf, paths: p })]);
        for (const [f, spec] of files) {
          mkdirSync(dirname(f), { recursive: true });
          writeFileSync(f, spec.content);
        }
        mkdirSync(p.tlsDir, { recursive: true });
        execFileSync(
          "openssl",
          [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            p.tlsKey,
            "-out",
            p.tlsCert,
            "-subj",
            "/CN=mail.example.com",
            "-days",
            "1",
          ],
          { stdio: "ignore" },
        );
        const d = spawnSync("doveconf", ["-n", "-c", p.dovecotConf], { encoding: "utf8" });
        expect(d.stderr).toBe("");
        expect(d.status).toBe(0);
        const r = spawnSync("postconf", ["-c", p.postfixDir, "-n"], { encoding: "utf8" });
        expect(r.stderr).toBe("");
        expect(r.stdout).toContain("virtual_transport");
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  },
);
