// The mail defaults a careful operator expects, proved against the real daemons of one vnode
// (Postfix + Dovecot + Rspamd signing DKIM) in its own network namespace:
// - SMTP smuggling (CVE-2023-51764): the known non-standard end-of-DATA sequences followed by a
//   second transaction with a forged sender, sent from the host side of the veth pair (outside
//   the vnode's mynetworks, which Postfix exempts), leave exactly one message: the outer one.
// - Local submission: root, postfix and the vmail user can run sendmail and their mail is
//   DKIM-signed; any other local user is refused by sendmail and by postdrop itself, and nothing
//   is queued or signed for them. The Rspamd milter socket is 0660 in Postfix's group.
//
// Non-root sendmail/postdrop accept only the default config directory (/etc/postfix) or one the
// default main.cf lists in alternate_config_directories. Rather than edit the host's main.cf, the
// local-submission tests give the namespace its own /etc/postfix: `ip netns exec` bind-mounts
// /etc/netns/<ns>/postfix over /etc/postfix, here a link to the vnode's config directory, so
// sendmail runs exactly as on a production vnode (where the agent's config is /etc/postfix) and
// postdrop checks authorized_submit_users from the vnode's own main.cf.
import { create } from "@bufbuild/protobuf";
import { execFile } from "node:child_process";
import { generateKeyPairSync, randomUUID, type KeyObject } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema, StateChangeSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { FilterOptions } from "../../agent/mail/filter-config.ts";
import { lookupGroupId, lookupUser } from "../../agent/mail/vmail-user.ts";
import { createRspamdPaths } from "../../agent/rspamd/paths.ts";
import { verifyDkimSignature } from "../helpers/filter-dkim.ts";
import { hamMessage } from "../helpers/filter-messages.ts";
import { SHARED_HS_CACHE } from "../helpers/filter-root.ts";
import { anywhere, headerValues, readCrlf, waitDelivered } from "../helpers/mail-maildir.ts";
import { HELO, sendMail } from "../helpers/mail-smtp.ts";
import { MAIL_HOSTNAME, createMailVnode, hashPassword, type MailVnode } from "../helpers/mail-vnode.ts";

const canRun =
  process.getuid?.() === 0 &&
  ["/usr/sbin/postfix", "/usr/sbin/dovecot", "/usr/bin/rspamd", "/usr/bin/setpriv"].every((f) => existsSync(f));
const D = "defaults.test";
const REMOTE = "carol@remote.test";
const FILTER: FilterOptions = {
  disableNetworkModules: true,
  dnsServers: ["127.0.0.1:53"],
  dnsTimeoutMs: 300,
  hsCacheDir: SHARED_HS_CACHE,
  normalWorkers: 1,
  greylist: false,
};

let v: MailVnode;
let dkimPublic: KeyObject;
let etcNetns = "";
const messageId = (data: string): string => /^Message-ID: (<[^>]+>)/m.exec(data)?.[1] ?? "";
const maildir = (local: string): string => v.host.paths.maildir(D, local);

/**
 * One SMTP session whose DATA content is written raw, in one write, as a smuggler's relay would
 * pass it on; then QUIT once the first end-of-DATA reply came. Returns every reply line the
 * server sent until it closed the connection.
 */
function rawSession(o: { host: string; from: string; to: string; content: string }): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: o.host, port: 25 });
    const script = [`EHLO ${HELO}`, `MAIL FROM:<${o.from}>`, `RCPT TO:<${o.to}>`, "DATA"];
    let buf = "";
    let replies = 0;
    let sentContent = false;
    let quit = false;
    const timer = setTimeout(() => s.destroy(new Error(`no close; got ${JSON.stringify(buf)}`)), 20_000);
    s.setEncoding("latin1");
    s.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve(buf.split("\r\n").filter((l) => l !== ""));
    });
    s.on("data", (d: string) => {
      buf += d;
      const finals = buf.split("\r\n").filter((l) => /^\d{3} /.test(l));
      while (replies < finals.length) {
        const line = finals[replies] ?? "";
        replies++;
        const next = script.shift();
        if (next !== undefined) s.write(`${next}\r\n`);
        else if (!sentContent && line.startsWith("354")) {
          sentContent = true;
          s.write(o.content);
        } else if (sentContent && !quit) {
          quit = true;
          s.write("QUIT\r\n");
        }
      }
    });
  });
}

/** `file` run inside the vnode's namespace as `user` (no supplementary groups), stdin given. */
function runAs(
  user: string,
  file: string,
  args: readonly string[],
  input: string,
): Promise<{ code: number; stderr: string }> {
  const u = lookupUser(user);
  if (!u) throw new Error(`no user ${user}`);
  return new Promise((resolve) => {
    const child = execFile(
      "ip",
      ["netns", "exec", v.ns.name, "setpriv", `--reuid=${u.uid}`, `--regid=${u.gid}`, "--clear-groups", file, ...args],
      { timeout: 20_000 },
      (err, _stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
    );
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(input);
  });
}

const maildropFiles = (): string[] => readdirSync(join(v.host.paths.postfixQueueDir, "maildrop"));

describe.skipIf(!canRun)("mail defaults against the real daemons: SMTP smuggling, local submission", () => {
  beforeAll(async () => {
    v = await createMailVnode("defaults", { filter: FILTER });
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    dkimPublic = rsa.publicKey;
    const hash = await hashPassword("unused-Secret-1");
    const state = create(DesiredStateSchema, {
      generation: 1n,
      settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [], rspamdEnabled: true },
      tls: { certificateChainPem: v.tls.certChainPem, privateKeyPem: v.tls.keyPem },
      domains: [{ domain: D, active: true }],
      mailboxes: ["alice", "bob"].map((l) => ({ address: `${l}@${D}`, passwordHash: hash, active: true })),
      dkimKeys: [
        {
          domain: D,
          selector: "s1",
          algorithm: "rsa",
          privateKeyPem: rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
        },
      ],
    });
    expect((await v.host.applyState(state)).changed).toBe(true);
    await v.host.start();
    // The namespace's own /etc/postfix: the vnode's config directory (see the header comment).
    etcNetns = join("/etc/netns", v.ns.name);
    mkdirSync(etcNetns, { recursive: true });
    symlinkSync(v.host.paths.postfixDir, join(etcNetns, "postfix"));
  });

  afterAll(async () => {
    if (etcNetns) rmSync(etcNetns, { recursive: true, force: true });
    await v?.teardown();
  });

  it("the agent refuses a mailbox whose hash has an absurd cost before writing its lookup row", async () => {
    const digest = (await v.host.status()).digest;
    const costly = `{SHA512-CRYPT}$6$rounds=999999999$saltsalt$${"x".repeat(86)}`;
    const err = await v.host
      .applyChanges([
        create(StateChangeSchema, {
          kind: { case: "upsertMailbox", value: { address: `slow@${D}`, passwordHash: costly, active: true } },
        }),
      ])
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "invalid_argument", field: "mailbox.password_hash" });
    expect(String(err)).toMatch(/rounds=999999999 exceed the limit of 50,000/);
    expect((await v.host.status()).digest).toBe(digest);
    // Postfix asks the same lookup table: the address was never added.
    const out = await sendMail({ ...v.smtp(25), from: REMOTE, to: [`slow@${D}`], data: "x" });
    expect([out.stage, out.reply.code]).toEqual(["rcpt", 550]);
  });

  it("the test client is outside mynetworks, which Postfix exempts from the bare-newline rule", () => {
    const main = readFileSync(v.host.paths.postfixMainCf, "utf8");
    const mynetworks = /^mynetworks = (.*)$/m.exec(main)?.[1] ?? "";
    expect(mynetworks).toBe("127.0.0.0/8 [::1]/128");
    expect(v.ns.hostAddress).toMatch(/^10\.251\./);
  });

  it.each([
    ["\\n.\\r\\n", "\n.\r\n"],
    ["\\n.\\n", "\n.\n"],
    ["\\r.\\r", "\r.\r"],
    ["\\r\\n.\\r", "\r\n.\r"],
  ])("a smuggled second message after %s inside DATA is never accepted", async (_name, fakeEnd) => {
    const outer = hamMessage({ from: REMOTE, to: `alice@${D}`, subject: "Quarterly numbers" });
    const tag = randomUUID();
    const smuggledId = `<${tag}@smuggled.test>`;
    // Each case forges its own sender, so its log check sees only its own session.
    const forged = `ceo-${tag.slice(0, 8)}@${D}`;
    const smuggled = [
      `MAIL FROM:<${forged}>`,
      `RCPT TO:<bob@${D}>`,
      "DATA",
      `From: The CEO <${forged}>`,
      `To: bob@${D}`,
      "Subject: Urgent wire transfer",
      `Message-ID: ${smuggledId}`,
      "",
      "Please wire the money today.",
    ].join("\r\n");
    const lines = await rawSession({
      host: v.ns.nsAddress,
      from: REMOTE,
      to: `alice@${D}`,
      content: `${outer.replace(/\r\n$/, "")}${fakeEnd}${smuggled}\r\n.\r\n`,
    });
    const queued = lines.filter((l) => /^250 .*queued as/.test(l));
    expect(queued, lines.join("\n")).toHaveLength(1);
    // The outer message arrives; nothing for bob, and the forged sender never reached the queue.
    await waitDelivered(maildir("alice"), messageId(outer));
    expect(anywhere(maildir("bob"), smuggledId)).toBe(false);
    expect(readFileSync(v.host.paths.postfixLog, "utf8")).not.toContain(`from=<${forged}>`);
  });

  it("the Rspamd milter socket is 0660 in Postfix's group, and Postfix still scans through it", async () => {
    const sock = statSync(createRspamdPaths(v.root).milterSocket);
    expect(sock.isSocket()).toBe(true);
    expect(sock.mode & 0o777).toBe(0o660);
    expect(sock.gid).toBe(lookupGroupId("postfix"));
    const data = hamMessage({ from: REMOTE, to: `bob@${D}` });
    expect((await sendMail({ ...v.smtp(25), from: REMOTE, to: [`bob@${D}`], data })).stage).toBe("done");
    const msg = readCrlf(await waitDelivered(maildir("bob"), messageId(data)));
    expect(headerValues(msg, "X-Spam-Status")[0] ?? "").toMatch(/^\s*No, score=/);
  });

  it.each(["root", "postfix", "vmail"])("%s may submit with sendmail, and the message is DKIM-signed", async (user) => {
    const data = hamMessage({ from: `alice@${D}`, to: `bob@${D}`, subject: `Local from ${user}` });
    const r = await runAs(user, "/usr/sbin/sendmail", ["-i", "-f", `alice@${D}`, "--", `bob@${D}`], data);
    expect(r, r.stderr).toMatchObject({ code: 0 });
    const msg = readCrlf(await waitDelivered(maildir("bob"), messageId(data)));
    const sigs = headerValues(msg, "DKIM-Signature");
    expect(sigs).toHaveLength(1);
    const check = verifyDkimSignature(msg, sigs[0] ?? "", dkimPublic);
    expect(check.tags).toMatchObject({ d: D, s: "s1" });
    expect([check.bodyHashOk, check.signatureOk]).toEqual([true, true]);
  });

  it("any other local user is refused by sendmail and by postdrop itself: nothing queued, nothing signed", async () => {
    const before = maildropFiles();
    const data = hamMessage({ from: `alice@${D}`, to: `bob@${D}`, subject: "Forged by nobody" });
    const viaSendmail = await runAs("nobody", "/usr/sbin/sendmail", ["-i", "-f", `alice@${D}`, "--", `bob@${D}`], data);
    expect(viaSendmail.code).not.toBe(0);
    expect(viaSendmail.stderr).toMatch(/nobody.*not allowed to submit mail/);
    // postdrop is the set-gid gate into the queue: it checks the list again for a caller that
    // skips sendmail and writes a queue file stream to it directly.
    const viaPostdrop = await runAs("nobody", "/usr/sbin/postdrop", [], "");
    expect(viaPostdrop.code).not.toBe(0);
    expect(viaPostdrop.stderr).toMatch(/nobody.*not allowed to submit mail/);
    expect(maildropFiles()).toEqual(before);
    // A permitted message sent afterwards is delivered: the refused one would have been ahead.
    const after = hamMessage({ from: `alice@${D}`, to: `bob@${D}`, subject: "After the refusal" });
    expect((await runAs("root", "/usr/sbin/sendmail", ["-i", "-f", `alice@${D}`, "--", `bob@${D}`], after)).code).toBe(
      0,
    );
    await waitDelivered(maildir("bob"), messageId(after));
    expect(anywhere(maildir("bob"), messageId(data))).toBe(false);
    expect(maildropFiles()).toEqual(before);
  });
});
