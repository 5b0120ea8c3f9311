// Real Postfix + Dovecot on a private root inside a network namespace, driven only through the
// mail host (the agent's API) and exercised with real clients over the veth pair: our SMTP
// client where exact reply codes matter, nodemailer and imapflow where a real client matters.
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { clone, create } from "@bufbuild/protobuf";
import nodemailer from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DesiredStateSchema,
  MailDomainSchema,
  MailboxSchema,
  StateChangeSchema,
  VnodeSettingsSchema,
  type DesiredState,
  type StateChange,
} from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { wholeStatePasses } from "../../agent/lookup/lookup-store.ts";
import { waitUntil } from "../../agent/process.ts";
import { canLogin, plaintextLogin } from "../helpers/mail-imap.ts";
import { HELO, buildMessage, sendMail } from "../helpers/mail-smtp.ts";
import { MAIL_HOSTNAME, createMailVnode, hashPassword, type MailVnode } from "../helpers/mail-vnode.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");
const D = "example.test";
const PASS = {
  alice: "alice-Secret-1",
  bob: "bob-Secret-2",
  new: "new-Secret-3",
  quota: "quota-Secret-4",
  sieve: "sieve-Secret-5",
  gone: "gone-Secret-6",
};
const SIEVE =
  'require ["fileinto", "mailbox"];\nif header :contains "subject" "[list]" {\n  fileinto :create "Lists";\n}\n';

let v: MailVnode;
let state: DesiredState;
const timings: Record<string, number> = {};
const change = (c: Parameters<typeof create<typeof StateChangeSchema>>[1]): StateChange => create(StateChangeSchema, c);

/** Wait until a message with this Message-ID sits in a maildir folder ("" = INBOX, ".Junk", …). */
async function delivered(local: string, id: string, folder = ""): Promise<string> {
  const dir = join(v.host.paths.maildir(D, local), folder, "new");
  let found = "";
  await waitUntil(
    `${id} in ${local}/${folder || "INBOX"}`,
    10_000,
    () => {
      if (!existsSync(dir)) return false;
      found =
        readdirSync(dir)
          .map((f) => join(dir, f))
          .find((f) => readFileSync(f, "utf8").includes(id)) ?? "";
      return found !== "";
    },
    25,
  );
  return found;
}

async function inbound(to: string, extra: { subject?: string; headers?: Record<string, string>; size?: number } = {}) {
  const msg = buildMessage({
    from: "sender@remote.test",
    to,
    subject: extra.subject ?? "hello",
    body: "Hi there,\r\nthis is a test.\r\n",
    ...(extra.headers ? { headers: extra.headers } : {}),
  });
  const out = await sendMail({
    ...v.smtp(25),
    from: "sender@remote.test",
    to: [to],
    data: msg.data,
    ...(extra.size ? { size: extra.size } : {}),
  });
  return { ...out, id: msg.id };
}

const logLines = (file: string, needle: string): number =>
  existsSync(file) ? readFileSync(file, "utf8").split(needle).length - 1 : 0;

describe.skipIf(!canRun)("mail vnode: Postfix + Dovecot on SQLite lookups", () => {
  beforeAll(async () => {
    v = await createMailVnode("vnode");
    state = create(DesiredStateSchema, {
      generation: 1n,
      settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [] },
      tls: { certificateChainPem: v.tls.certChainPem, privateKeyPem: v.tls.keyPem },
      // nocatch.test has no catch-all, so the virtual maps decide alone there.
      domains: [
        { domain: D, active: true },
        { domain: "nocatch.test", active: true },
      ],
      mailboxes: [
        { address: `alice@${D}`, passwordHash: await hashPassword(PASS.alice), active: true },
        { address: `bob@${D}`, passwordHash: await hashPassword(PASS.bob), active: true },
      ],
      aliases: [
        { source: `info@${D}`, targets: [`alice@${D}`, `bob@${D}`], active: true },
        { source: `@${D}`, targets: [`bob@${D}`], active: true },
      ],
    });
    const t0 = performance.now();
    const first = await v.host.applyState(state);
    timings.firstApplyMs = performance.now() - t0;
    await v.host.start();
    timings.applyAndStartMs = performance.now() - t0;
    expect(first.changed).toBe(true);
  });

  afterAll(async () => {
    await v?.teardown();
    console.log(
      "mail-vnode timings (ms)",
      Object.fromEntries(Object.entries(timings).map(([k, x]) => [k, Math.round(x)])),
    );
  });

  it("applies the same state again as a no-op with an unchanged digest", async () => {
    // Back to the first state (tests that ran before added rows of their own), then once more.
    await v.host.applyState(state);
    const t0 = performance.now();
    const again = await v.host.applyState(state);
    timings.noopApplyMs = performance.now() - t0;
    expect(again).toMatchObject({ changed: false, diff: [] });
    expect(v.host.drift()).toEqual([]);
  });

  it("delivers on port 25 and serves the message over IMAPS (993)", async () => {
    const out = await inbound(`alice@${D}`);
    expect(out.stage).toBe("done");
    await delivered("alice", out.id);
    const imap = v.imap(`alice@${D}`, PASS.alice);
    await imap.connect();
    try {
      const lock = await imap.getMailboxLock("INBOX");
      try {
        const uids = await imap.search({ header: { "message-id": out.id } }, { uid: true });
        expect(uids).toHaveLength(1);
      } finally {
        lock.release();
      }
    } finally {
      await imap.logout();
    }
  });

  it("refuses an unknown recipient with 550 5.1.1 at RCPT", async () => {
    const out = await inbound("nobody@nocatch.test");
    expect(out.stage).toBe("rcpt");
    expect(out.reply.code).toBe(550);
    expect(out.reply.text).toContain("5.1.1");
  });

  it("is not an open relay: RCPT to a stranger's domain is refused", async () => {
    const out = await inbound("victim@stranger.test");
    expect(out.stage).toBe("rcpt");
    expect(out.reply.code).toBe(554);
    expect(out.reply.text).toContain("Relay access denied");
  });

  it("expands an alias to all targets and sends unknown local parts to the catch-all", async () => {
    const alias = await inbound(`info@${D}`);
    expect(alias.stage).toBe("done");
    await delivered("alice", alias.id);
    await delivered("bob", alias.id);
    const caught = await inbound(`random-${Date.now()}@${D}`);
    expect(caught.stage).toBe("done");
    await delivered("bob", caught.id);
  });

  it("submission 587: STARTTLS is required before AUTH, then nodemailer submits", async () => {
    const plain = await sendMail({
      ...v.smtp(587),
      from: `alice@${D}`,
      to: [`bob@${D}`],
      data: "x",
      auth: { user: `alice@${D}`, pass: PASS.alice },
    });
    expect(plain.stage).toBe("auth");
    expect(plain.reply.code).toBeGreaterThanOrEqual(500);

    const transport = nodemailer.createTransport({
      host: v.ns.nsAddress,
      port: 587,
      secure: false,
      requireTLS: true,
      name: HELO,
      auth: { user: `alice@${D}`, pass: PASS.alice },
      tls: { ca: v.tls.caPem, servername: MAIL_HOSTNAME },
    });
    const info = await transport.sendMail({
      from: `alice@${D}`,
      to: `bob@${D}`,
      subject: "via 587",
      text: "Hello Bob",
    });
    transport.close();
    expect(info.accepted).toEqual([`bob@${D}`]);
    await delivered("bob", info.messageId);
  });

  it("smtps 465: implicit TLS with AUTH delivers", async () => {
    const msg = buildMessage({ from: `bob@${D}`, to: `alice@${D}`, subject: "via 465", body: "Hello Alice\r\n" });
    const out = await sendMail({
      ...v.smtp(465),
      from: `bob@${D}`,
      to: [`alice@${D}`],
      data: msg.data,
      auth: { user: `bob@${D}`, pass: PASS.bob },
    });
    expect(out.stage).toBe("done");
    await delivered("alice", msg.id);
  });

  it("refuses a MAIL FROM the login does not own (sender-login mismatch)", async () => {
    const msg = buildMessage({ from: `bob@${D}`, to: `alice@${D}`, subject: "spoof", body: "x\r\n" });
    const out = await sendMail({
      ...v.smtp(465),
      from: `bob@${D}`,
      to: [`alice@${D}`],
      data: msg.data,
      auth: { user: `alice@${D}`, pass: PASS.alice },
    });
    expect(out.stage).toBe("rcpt");
    expect(out.reply.code).toBe(553);
    expect(out.reply.text).toContain("not owned by user");
  });

  it("refuses a wrong password on submission", async () => {
    const out = await sendMail({
      ...v.smtp(465),
      from: `alice@${D}`,
      to: [`bob@${D}`],
      data: "x",
      auth: { user: `alice@${D}`, pass: "wrong-password" },
    });
    expect(out.stage).toBe("auth");
    expect(out.reply.code).toBe(535);
  });

  it("refuses plaintext IMAP login on 143 without TLS, accepts it after STARTTLS", async () => {
    const r = await plaintextLogin(v.ns.nsAddress, 143, `alice@${D}`, PASS.alice);
    expect(r.greeting).toContain("LOGINDISABLED");
    expect(r.reply).toMatch(/^a (NO|BAD)/);
    expect(await canLogin(v.imap(`alice@${D}`, PASS.alice, { port: 143, secure: false, doSTARTTLS: true }))).toBe(true);
  });

  it("a mailbox added with applyChanges logs in over IMAP at the first attempt, without any reload", async () => {
    const reloadsBefore = logLines(v.host.paths.postfixLog, "reload") + logLines(v.host.paths.dovecotLog, "SIGHUP");
    const hash = await hashPassword(PASS.new);
    const t0 = performance.now();
    const res = await v.host.applyChanges([
      change({ kind: { case: "upsertMailbox", value: { address: `new@${D}`, passwordHash: hash, active: true } } }),
    ]);
    timings.applyChangesMs = performance.now() - t0;
    expect(res.diff).toEqual([`+ mailbox new@${D}`]);
    // The row is committed before applyChanges returns and Dovecot reads it per login: the first
    // attempt succeeds (no cache to expire, no reload to wait for), however busy the machine is.
    expect(await canLogin(v.imap(`new@${D}`, PASS.new))).toBe(true);
    timings.applyChangesToImapLoginMs = performance.now() - t0;
    const out = await inbound(`new@${D}`);
    timings.applyChangesToDeliveredMs = performance.now() - t0;
    expect(out.stage).toBe("done");
    await delivered("new", out.id);
    expect(logLines(v.host.paths.postfixLog, "reload") + logLines(v.host.paths.dovecotLog, "SIGHUP")).toBe(
      reloadsBefore,
    );
  });

  it("refuses mail and logins for a deactivated mailbox, at once", async () => {
    const hash = await hashPassword(PASS.gone);
    await v.host.applyChanges([
      change({ kind: { case: "upsertMailbox", value: { address: `off@${D}`, passwordHash: hash, active: true } } }),
    ]);
    // Catch-all would take the address once the mailbox is inactive; refuse it explicitly.
    await v.host.applyChanges([
      change({ kind: { case: "upsertMailbox", value: { address: `off@${D}`, passwordHash: hash, active: false } } }),
    ]);
    expect(await canLogin(v.imap(`off@${D}`, PASS.gone))).toBe(false);
    // In the domain without catch-all the RCPT is refused outright.
    await v.host.applyChanges([
      change({
        kind: { case: "upsertMailbox", value: { address: `off@nocatch.test`, passwordHash: hash, active: false } },
      }),
    ]);
    const out = await inbound("off@nocatch.test");
    expect(out.stage).toBe("rcpt");
    expect(out.reply.code).toBe(550);
  });

  it("enforces quota: 552 5.2.2 at RCPT for a message that does not fit, and GETQUOTAROOT reports the limit", async () => {
    await v.host.applyChanges([
      change({
        kind: {
          case: "upsertMailbox",
          value: {
            address: `small@${D}`,
            passwordHash: await hashPassword(PASS.quota),
            active: true,
            quotaBytes: 20_480n,
          },
        },
      }),
    ]);
    const fits = await inbound(`small@${D}`, { size: 2_000 });
    expect(fits.stage).toBe("done");
    await delivered("small", fits.id);
    const big = await inbound(`small@${D}`, { size: 200_000 });
    expect(big.stage).toBe("rcpt");
    expect(big.reply.code).toBe(552);
    expect(big.reply.text).toContain("5.2.2");
    const imap = v.imap(`small@${D}`, PASS.quota);
    await imap.connect();
    try {
      const q = await imap.getQuota("INBOX");
      expect(q && q.storage?.limit).toBe(20_480);
      expect(q && q.storage?.usage).toBeGreaterThan(0);
    } finally {
      await imap.logout();
    }
  });

  it("runs the mailbox's own Sieve script on delivery, and files spam-flagged mail into Junk", async () => {
    await v.host.applyChanges([
      change({
        kind: {
          case: "upsertMailbox",
          value: {
            address: `sieve@${D}`,
            passwordHash: await hashPassword(PASS.sieve),
            active: true,
            sieveScript: SIEVE,
          },
        },
      }),
    ]);
    const list = await inbound(`sieve@${D}`, { subject: "[list] weekly digest" });
    expect(list.stage).toBe("done");
    await delivered("sieve", list.id, ".Lists");
    const spam = await inbound(`sieve@${D}`, { headers: { "X-Spam": "Yes" } });
    expect(spam.stage).toBe("done");
    await delivered("sieve", spam.id, ".Junk");
    const ham = await inbound(`sieve@${D}`);
    await delivered("sieve", ham.id);
  });

  it("deletes a mailbox: maildir removed, RCPT refused, login refused (keep_maildir keeps it)", async () => {
    const hash = await hashPassword(PASS.gone);
    for (const local of ["del1", "del2"]) {
      await v.host.applyChanges([
        change({
          kind: {
            case: "upsertMailbox",
            value: { address: `${local}@nocatch.test`, passwordHash: hash, active: true },
          },
        }),
      ]);
    }
    const home1 = v.host.paths.mailHome("nocatch.test", "del1");
    const home2 = v.host.paths.mailHome("nocatch.test", "del2");
    expect(existsSync(join(home1, "Maildir/new"))).toBe(true);
    const res = await v.host.applyChanges([
      change({ kind: { case: "deleteMailbox", value: "del1@nocatch.test" } }),
      change({ kind: { case: "deleteMailbox", value: "del2@nocatch.test" }, keepMaildir: true }),
    ]);
    expect(res.diff).toContain("- mailbox del1@nocatch.test");
    expect(existsSync(home1)).toBe(false);
    expect(existsSync(home2)).toBe(true);
    expect(await canLogin(v.imap("del1@nocatch.test", PASS.gone))).toBe(false);
    const out = await inbound("del1@nocatch.test");
    expect(out.stage).toBe("rcpt");
    expect(out.reply.code).toBe(550);
  });

  it("a mailbox whose maildir is missing still receives and logs in: Dovecot makes it, 0700, the vmail user's", async () => {
    // What lets a whole-state apply heal maildirs in the background (mail-host.ts).
    const hash = await hashPassword(PASS.new);
    await v.host.applyChanges([
      change({
        kind: { case: "upsertMailbox", value: { address: "lazy@nocatch.test", passwordHash: hash, active: true } },
      }),
    ]);
    const home = v.host.paths.mailHome("nocatch.test", "lazy");
    rmSync(home, { recursive: true });
    const out = await inbound("lazy@nocatch.test");
    expect(out.stage).toBe("done");
    const newDir = join(home, "Maildir", "new");
    await waitUntil("lazy's maildir", 10_000, () => existsSync(newDir) && readdirSync(newDir).length === 1);
    expect(statSync(home).mode & 0o777).toBe(0o700);
    // The vmail user's, as the domain's msg directory the agent made.
    expect(statSync(join(home, "Maildir")).uid).toBe(statSync(join(v.host.paths.domainDir("nocatch.test"), "msg")).uid);
    expect(await canLogin(v.imap("lazy@nocatch.test", PASS.new))).toBe(true);
  });

  it("reloads Dovecot through sc() and keeps serving; status reports both daemons", async () => {
    const before = await v.host.status();
    await v.sc.reload("dovecot");
    expect(await canLogin(v.imap(`alice@${D}`, PASS.alice))).toBe(true);
    const after = await v.host.status();
    expect(after.services.map((s) => s.running)).toEqual([true, true]);
    expect(after.services.map((s) => s.pid)).toEqual(before.services.map((s) => s.pid));
  });

  it("writes a whole state in one pass over its rows; a row on a domain it does not host refuses it all first", async () => {
    await v.host.applyState(state);
    const main = readFileSync(v.host.paths.postfixMainCf, "utf8");
    const before = await v.host.status();
    const passes = wholeStatePasses.count;
    // A new domain and mailbox plus a changed Postfix setting, and one mailbox on a domain that is
    // neither in the state nor on the vnode: refused naming the field, before any file or row.
    const hash = state.mailboxes[0]?.passwordHash ?? "";
    const bad = clone(DesiredStateSchema, state);
    bad.generation += 1n;
    bad.settings = clone(VnodeSettingsSchema, state.settings ?? create(VnodeSettingsSchema));
    bad.settings.mailHostname = "onepass.vnode.test";
    bad.domains.push(create(MailDomainSchema, { domain: "onepass.test", active: true }));
    bad.mailboxes.push(
      create(MailboxSchema, { address: "fresh@onepass.test", passwordHash: hash, active: true }),
      create(MailboxSchema, { address: "stray@elsewhere.test", passwordHash: hash, active: true }),
    );
    const err = await v.host.applyState(bad).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "invalid_argument", field: "mailbox.address" });
    expect(String((err as Error).message)).toContain("domain elsewhere.test is not hosted on this vnode");
    expect(wholeStatePasses.count - passes).toBe(0); // nothing written, not even rehearsed
    expect(readFileSync(v.host.paths.postfixMainCf, "utf8")).toBe(main);
    const after = await v.host.status();
    expect({ digest: after.digest, generation: after.generation }).toEqual({
      digest: before.digest,
      generation: before.generation,
    });
    expect(v.host.drift()).toEqual([]);
    // The same state without the stray row: one pass writes it (before: a rolled-back check pass, then the write).
    const good = clone(DesiredStateSchema, bad);
    good.mailboxes = good.mailboxes.filter((m) => !m.address.endsWith("@elsewhere.test"));
    const applied = await v.host.applyState(good);
    expect(wholeStatePasses.count - passes).toBe(1);
    expect(applied.diff).toEqual(
      expect.arrayContaining([
        "+ domain onepass.test",
        "+ mailbox fresh@onepass.test",
        `~ file ${v.host.paths.postfixMainCf}`,
      ]),
    );
    expect(readFileSync(v.host.paths.postfixMainCf, "utf8")).toContain("myhostname = onepass.vnode.test");
    await v.host.applyState(state); // back to the suite's state
  });

  it("a dry run reports the change and changes nothing", async () => {
    // alice's maildir exists (Dovecot makes it at the first delivery after a whole state).
    const first = await inbound(`alice@${D}`);
    await delivered("alice", first.id);
    const before = v.host.drift();
    const digest = (await v.host.status()).digest;
    const res = await v.host.applyChanges([change({ kind: { case: "deleteMailbox", value: `alice@${D}` } })], {
      dryRun: true,
    });
    expect(res.diff).toEqual([`- mailbox alice@${D}`]);
    expect(res.digest).toBe(digest);
    expect(existsSync(v.host.paths.maildir(D, "alice"))).toBe(true);
    expect(await canLogin(v.imap(`alice@${D}`, PASS.alice))).toBe(true);
    expect(v.host.drift()).toEqual(before);
  });

  it("refuses a broken config (checker's words in the error), keeps the live files and mail flowing", async () => {
    const liveMain = readFileSync(v.host.paths.postfixMainCf, "utf8");
    const broken = await v.sibling({ extraMainCf: [["netserva_no_such_parameter", "yes"]] });
    const err = await broken.applyState(state).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "failed_precondition" });
    expect(String((err as Error).message)).toContain("unused parameter");
    const brokenDovecot = await v.sibling({ extraDovecotConf: ["no_such_dovecot_setting = 1"] });
    const err2 = await brokenDovecot.applyState(state).catch((e: unknown) => e);
    expect(err2).toMatchObject({ code: "failed_precondition" });
    expect(String((err2 as Error).message)).toContain("no_such_dovecot_setting");
    expect(readFileSync(v.host.paths.postfixMainCf, "utf8")).toBe(liveMain);
    expect(v.host.drift()).toEqual([]);
    const out = await inbound(`alice@${D}`);
    expect(out.stage).toBe("done");
    await delivered("alice", out.id);
  });

  it("reports a hand-edited file as drift and puts it back on the next apply", async () => {
    writeFileSync(v.host.paths.postfixMainCf, `${readFileSync(v.host.paths.postfixMainCf, "utf8")}# hand edit\n`);
    expect(v.host.drift()).toEqual([v.host.paths.postfixMainCf]);
    const fixed = await v.host.applyState(state);
    expect(fixed.diff).toContain(`~ file ${v.host.paths.postfixMainCf}`);
    expect(v.host.drift()).toEqual([]);
  });
});
