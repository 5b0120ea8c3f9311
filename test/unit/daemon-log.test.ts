// The daemons' words about a reload, read from their real log files: only what was written after
// the mark, only trouble lines, without timestamps, pids and Dovecot's per-client tail, each
// distinct line once and the cause (the first lines) kept. Lines are copied from real runs.
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { awaitDaemonWords, daemonWords, markDaemonLogs, quoteWords } from "../../agent/mail/daemon-log.ts";
import { createVnodePaths, type VnodePaths } from "../../agent/paths.ts";

let root: string;
let p: VnodePaths;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "daemon-log-"));
  p = createVnodePaths(root);
  mkdirSync(dirname(p.postfixLog), { recursive: true });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

describe("daemon words since a mark", () => {
  it("takes Postfix's fatal lines written after the mark, without timestamps and pids", async () => {
    appendFileSync(p.postfixLog, "Dec 07 01:50:00 mail postfix/master[1]: fatal: an old failure\n");
    const marks = markDaemonLogs(p);
    appendFileSync(
      p.postfixLog,
      [
        "Dec 07 01:51:26 mail postfix/postfix-script[7248]: starting the Postfix mail system",
        "Dec 07 01:51:26 mail postfix/master[7250]: fatal: bind 127.0.0.1 port 25: Address already in use",
        "Dec 07 01:51:28 mail postfix/postfix-script[7251]: fatal: mail system startup failed",
        "Dec 07 01:51:29 mail postfix/smtpd[7560]: warning: hostname x.test does not resolve to address 10.0.0.1",
        "",
      ].join("\n"),
    );
    expect(daemonWords(marks, "postfix")).toEqual([
      "postfix/master: fatal: bind 127.0.0.1 port 25: Address already in use",
      "postfix/postfix-script: fatal: mail system startup failed",
    ]);
    expect(daemonWords(marks, "dovecot")).toEqual([]);
    expect(await awaitDaemonWords(marks, "dovecot", 0)).toEqual([]);
  });

  it("keeps each distinct Dovecot error once, the first ones, without the per-client tail", () => {
    const marks = markDaemonLogs(p);
    const tls = (login: string, session: string): string =>
      `Dec 07 01:51:40 ${login}: Error: Failed to initialize SSL server context: Can't load SSL certificate (ssl_cert setting): error:0A00018F:SSL routines::ee key too small: user=<>, rip=10.251.218.145, lip=10.251.218.146, session=<${session}>`;
    appendFileSync(
      p.dovecotLog,
      [
        "Dec 07 01:51:17 master: Warning: SIGHUP received - reloading configuration",
        "Dec 07 01:51:17 master: Error: service(imap-login): listen(127.0.0.1, 143) failed: Address already in use",
        "Dec 07 01:51:40 lmtp(2432): Error: SSL context initialization failed, disabling SSL: ee key too small",
        tls("imap-login", "a"),
        tls("imap-login", "b"),
        tls("pop3-login", "c"),
        tls("managesieve-login", "d"),
        tls("imap-login", "e"),
        "",
      ].join("\n"),
    );
    const words = daemonWords(marks, "dovecot");
    expect(words).toHaveLength(4);
    expect(words[0]).toBe("master: Error: service(imap-login): listen(127.0.0.1, 143) failed: Address already in use");
    expect(words[1]).toBe("lmtp: Error: SSL context initialization failed, disabling SSL: ee key too small");
    expect(words[2]).toMatch(/^imap-login: Error: .*ee key too small$/);
    expect(words[3]?.split(":")[0]).toBe("pop3-login");
    expect(quoteWords([["dovecot", words.slice(0, 1)]])).toBe(
      " (dovecot logged: master: Error: service(imap-login): listen(127.0.0.1, 143) failed: Address already in use)",
    );
    expect(quoteWords([["postfix", []]])).toBe("");
  });

  it("reads a log that was rotated (shorter than the mark) from its start, and a missing one as silent", () => {
    appendFileSync(p.postfixLog, `${"x".repeat(500)}\n`);
    const marks = markDaemonLogs(p);
    writeFileSync(p.postfixLog, "Dec 07 02:00:00 mail postfix/master[9]: panic: something\n");
    expect(daemonWords(marks, "postfix")).toEqual(["postfix/master: panic: something"]);
    expect(daemonWords(markDaemonLogs(createVnodePaths(join(root, "none"))), "dovecot")).toEqual([]);
  });
});
