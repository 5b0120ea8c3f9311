// Adopting a NetServa vnode in place, and going back (issue 17). The vnode runs NetServa's own
// Postfix and Dovecot configuration (test/helpers/netserva-daemons.ts) on a sysadm DB of 300
// mailboxes in mixed hash forms, homes under /srv and, for one domain, under /home, each domain
// its own uid, an old message in every maildir. A steady sender delivers throughout.
// `vnode adopt --yes` imports and switches in one apply: every active mailbox of the sample (all
// hash forms, all of the /home domain) logs in over IMAP with its old password and still holds
// its old message; the inactive one does not log in; an alias and the catch-all deliver;
// shvmail flags the weak hashes; chvmail and delvmail work on adopted mailboxes; a second run
// changes nothing. `--rollback` puts NetServa's files back (digests equal) and NetServa's
// configuration serves again. The sender loses nothing (every accepted Message-ID is in its
// recipient's INBOX exactly once).
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVnodePaths } from "../../agent/paths.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";
import { startAgentProcess, type AgentProcess } from "../helpers/agent-process.ts";
import { until } from "../helpers/mail-fleet.ts";
import { plaintextLogin } from "../helpers/mail-imap.ts";
import { startMailStream, submitOnce, type MailStream } from "../helpers/mail-stream.ts";
import { createTestNetns, type TestNetns } from "../helpers/netns.ts";
import { passwordOf, writeNetservaFixture, type NetservaFixture } from "../helpers/netserva-fixture.ts";
import { oldMessageId, seedMaildirs, startNetservaDaemons, writeNetservaDaemons } from "../helpers/netserva-daemons.ts";

const canRun =
  process.getuid?.() === 0 &&
  existsSync("/usr/sbin/postfix") &&
  existsSync("/usr/sbin/dovecot") &&
  existsSync("/usr/bin/doveadm");
const PORT = 7444;
const NAME = "netserva-live";
const HOSTNAME = "mail.netserva.test";
const DOMAINS = 5;
const PER_DOMAIN = 60;

type Row = Record<string, unknown>;
let harness: Harness;
let ns: TestNetns;
let root: string;
let logDir: string;
let agent: AgentProcess | undefined;
let fixture: NetservaFixture;
let stream: MailStream | undefined;

const sha = (file: string): string => createHash("sha256").update(readFileSync(file)).digest("hex");
const statusRow = async (): Promise<Row | undefined> =>
  (JSON.parse((await harness.cli(["status", "--json"])).out) as Row[]).find((r) => r["vnode"] === NAME);

/** INBOX Message-IDs over IMAP: our Dovecot (implicit TLS, the controller's CA) or NetServa's (plain 143). */
async function inbox(user: string, pass: string, tls: boolean): Promise<string[]> {
  const client = new ImapFlow({
    host: ns.nsAddress,
    port: tls ? 993 : 143,
    secure: tls,
    doSTARTTLS: false,
    auth: { user, pass },
    ...(tls ? { tls: { ca: readFileSync(join(harness.home, "ca", "ca.crt"), "utf8"), servername: HOSTNAME } } : {}),
    logger: false,
  });
  client.on("error", () => undefined);
  await client.connect();
  try {
    const lock = await client.getMailboxLock("INBOX");
    try {
      const ids: string[] = [];
      if (client.mailbox !== false && client.mailbox.exists > 0)
        for await (const m of client.fetch("1:*", { envelope: true })) ids.push(m.envelope?.messageId ?? "");
      return ids;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** For a failed check: each message's phase, Postfix's and Dovecot's log lines for it, and the queue. */
async function whereMailWent(
  log: string,
  dovecotLog: string,
  configDir: string,
  missing: ReadonlyArray<{ id: string; phase: string }>,
): Promise<string> {
  const lines = existsSync(log) ? readFileSync(log, "utf8").split("\n") : [];
  const copies = new Set<string>();
  for (const m of missing) {
    const queueIds = lines.filter((l) => l.includes(`message-id=${m.id}`)).map((l) => /: ([0-9A-F]{6,}):/.exec(l)?.[1]);
    const said = lines.filter((l) => queueIds.some((q) => q !== undefined && l.includes(`${q}:`)));
    if (existsSync(dovecotLog))
      said.push(
        ...readFileSync(dovecotLog, "utf8")
          .split("\n")
          .filter((l) => l.includes(m.id)),
      );
    copies.add(`${m.phase} ${m.id}:\n  ${said.join("\n  ") || "(no log line)"}`);
  }
  const queue = await ns.run("postqueue", ["-c", configDir, "-p"]).then(
    (r) => r.stdout,
    (e: unknown) => String(e),
  );
  return `${copies.size} (10 at most shown):\n${[...copies].slice(0, 10).join("\n")}\nqueue:\n${queue}`;
}

const loginRefused = async (user: string, pass: string, tls: boolean): Promise<boolean> =>
  inbox(user, pass, tls).then(
    () => false,
    () => true,
  );

describe.skipIf(!canRun)("vnode adopt: a live NetServa vnode switched in place and rolled back", () => {
  beforeAll(async () => {
    harness = await startHarness({ healthIntervalMs: 300 });
    logDir = mkdtempSync(join(tmpdir(), "nsm-adopt-live-logs-"));
    ns = await createTestNetns("f17s");
    root = mkdtempSync(join(tmpdir(), "nsm-adopt-live-root-"));
    chmodSync(root, 0o755);
    fixture = writeNetservaFixture(root, { domains: DOMAINS, perDomain: PER_DOMAIN });
    await writeNetservaDaemons(root, fixture, ns.nsAddress);
    seedMaildirs(fixture);
    await startNetservaDaemons(ns, root);
    const { home } = await harness.enrollVnode(NAME, `${ns.nsAddress}:${PORT}`, "agent-netserva-live");
    const set = await harness.cli(["vnode", "set", NAME, "--mail-hostname", HOSTNAME, "--mail-listen", ns.nsAddress]);
    expect(set.code, set.err).toBe(0);
    agent = await startAgentProcess({ ns, home, root, port: PORT, logDir });
  }, 300_000);

  afterAll(async () => {
    await stream?.stop().catch(() => undefined);
    await agent?.stop().catch(() => undefined);
    await ns?.destroy();
    await harness?.close();
    if (root && !process.env["KEEP_LOGS"]) rmSync(root, { recursive: true, force: true });
    if (logDir && !process.env["KEEP_LOGS"]) rmSync(logDir, { recursive: true, force: true });
  });

  // One scenario in order: adoption and rollback are phases of one vnode's life.
  it("adopts with mail flowing, serves every old login and message, rolls back to NetServa's files", async () => {
    const paths = createVnodePaths(root);
    const netservaFiles = [paths.postfixMainCf, paths.postfixMasterCf, paths.dovecotConf];
    const original = new Map(netservaFiles.map((f) => [f, sha(f)]));
    const sysadmBefore = sha(fixture.sysadmDb);
    await until(
      async () => ((await statusRow())?.["management"] === "unmanaged" ? true : undefined),
      60_000,
      "the NetServa vnode to report unmanaged",
    );
    // NetServa's configuration serves before anything is done.
    expect((await plaintextLogin(ns.nsAddress, 143, "user4@ns0.test", passwordOf("user4@ns0.test"))).reply).toMatch(
      /^a OK/,
    );

    // Not ns0: NetServa's catch-all there takes its mailboxes' mail too (its alias map is asked
    // first), ours does not, so a stream to ns0 would land in two places (the plan warns of it).
    const recipients = ["user10@ns1.test", "user10@ns2.test", "user10@ns3.test", "user10@ns4.test", "user11@ns4.test"];
    const s = startMailStream({
      host: ns.nsAddress,
      port: 25,
      from: "user9@ns1.test",
      recipients,
      workers: 2,
      perSecond: 4,
    });
    stream = s;
    s.setPhase("before");
    await until(async () => (s.accepted.size >= 5 ? true : undefined), 60_000, "the stream to deliver via NetServa");

    // The switch.
    s.setPhase("adopt");
    const adoptStarted = performance.now();
    const adopted = await harness.cli(["vnode", "adopt", NAME, "--yes", "--json"]);
    const adoptSeconds = (performance.now() - adoptStarted) / 1000;
    expect(adopted.code, adopted.err + adopted.out).toBe(0);
    const report = JSON.parse(adopted.out) as {
      imported: Record<string, { added: number; updated: number; unchanged: number }>;
      switched: boolean;
      pushed: boolean;
      keptAside: string[];
      files: Array<{ path: string; before: string; after: string; diff: string[] }>;
      rows: string[];
      warnings: string[];
      weakHashes: Array<{ address: string; scheme: string }>;
      preview: { files: Array<{ path: string; after: string }> };
    };
    expect(report.switched).toBe(true);
    expect(report.warnings.join("\n")).toContain("catch-all @ns0.test: NetServa's maps send it the mail");
    expect(report.weakHashes.map((w) => w.scheme).sort()).toEqual(["MD5-CRYPT", "PLAIN-MD5"]);
    expect(report.pushed).toBe(true);
    expect(report.imported["domains"]?.added).toBe(DOMAINS);
    expect(report.imported["mailboxes"]?.added).toBe(DOMAINS * PER_DOMAIN);
    expect(report.imported["aliases"]?.added).toBe(fixture.aliases.length);
    expect(report.rows.filter((r) => r.startsWith("+ mailbox ")).length).toBe(DOMAINS * PER_DOMAIN);
    const mainDiff = report.files.find((f) => f.path === paths.postfixMainCf);
    expect(mainDiff?.before).toBe(original.get(paths.postfixMainCf));
    expect(mainDiff?.diff.join("\n")).toContain("- # NetServa main.cf (sqlite)");
    expect(report.keptAside).toEqual(expect.arrayContaining(netservaFiles));
    expect(adopted.out).not.toMatch(/\$[1256]y?\$|\{PLAIN-MD5\}[0-9a-f]|pw-user/);
    expect(readFileSync(paths.postfixMainCf, "utf8")).toContain("Rendered by netserva-mail");
    // What was shown before the switch is what was written.
    for (const f of [paths.postfixMainCf, paths.postfixMasterCf])
      expect(report.preview.files.find((x) => x.path === f)?.after).toBe(sha(f));
    s.setPhase("adopted");
    await until(
      async () => {
        const r = await statusRow();
        return r?.["management"] === "managed" && r["appliedGeneration"] === r["generation"] ? true : undefined;
      },
      60_000,
      "managed at its generation",
    );

    // Every hash form, and all of the /home domain, log in with the old password and keep their mail.
    const sample = fixture.mailboxes.filter(
      (m) => m.active && (m.address.endsWith("@ns4.test") || /^user[0-5]@ns[0-3]\.test$/.test(m.address)),
    );
    expect(sample.length).toBeGreaterThanOrEqual(80);
    expect(new Set(sample.map((m) => m.scheme))).toEqual(
      new Set(["SHA512-CRYPT", "BLF-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "PLAIN-MD5"]),
    );
    const missing: string[] = [];
    for (const m of sample) {
      const ids = await inbox(m.address, passwordOf(m.address), true).catch((e: unknown) => [`login: ${String(e)}`]);
      if (!ids.includes(oldMessageId(m.address))) missing.push(`${m.address} (${m.scheme}): ${ids.join(",")}`);
    }
    expect(missing).toEqual([]);
    // Maildirs stay where they were, with their owners.
    const homeBox = fixture.mailboxes.find((m) => m.address === "user7@ns4.test");
    expect(homeBox?.home).toContain("/home/u2004/");
    expect(statSync(join(homeBox?.home ?? "", "Maildir")).uid).toBe(2004);
    expect(existsSync(join(root, "srv/ns4.test"))).toBe(false);
    // The inactive mailbox does not log in.
    const inactive = fixture.mailboxes.find((m) => !m.active)?.address ?? "";
    expect(await loginRefused(inactive, passwordOf(inactive), true)).toBe(true);

    // An alias and the catch-all deliver.
    for (const [to, id] of [
      ["team@ns1.test", "<alias-team@adopt.test>"],
      ["nobody-here@ns0.test", "<catch-all@adopt.test>"],
    ] as const) {
      const sent = await submitOnce(
        { host: ns.nsAddress, port: 25 },
        "someone@remote.test",
        to,
        `From: someone@remote.test\r\nTo: ${to}\r\nSubject: adopted routing\r\nMessage-ID: ${id}\r\n\r\nhello\r\n`,
      );
      expect(sent.kind).toBe("accepted");
    }
    for (const [user, id] of [
      ["user0@ns1.test", "<alias-team@adopt.test>"],
      ["user1@ns1.test", "<alias-team@adopt.test>"],
      ["user2@ns0.test", "<catch-all@adopt.test>"],
    ] as const)
      await until(
        async () => ((await inbox(user, passwordOf(user), true)).includes(id) ? true : undefined),
        60_000,
        `${id} in ${user}`,
      );

    // shvmail names weak schemes (never a hash); chvmail and delvmail work on adopted mailboxes.
    const weak = await harness.cli(["shvmail", NAME, "user2@ns0.test", "--format", "json"]);
    expect(weak.code, weak.err).toBe(0);
    expect(JSON.parse(weak.out)).toMatchObject({ passwordScheme: "MD5-CRYPT", weakPassword: true });
    expect(weak.out).not.toContain("$1$");
    const strong = JSON.parse((await harness.cli(["shvmail", NAME, "user4@ns0.test", "--format", "json"])).out) as Row;
    expect(strong).toMatchObject({ passwordScheme: "SHA512-CRYPT", weakPassword: false });
    const changed = await harness.cli(["chvmail", NAME, "user2@ns0.test", "--password-stdin"], "New-adopted-pass-1");
    expect(changed.code, changed.err).toBe(0);
    expect(JSON.parse((await harness.cli(["shvmail", NAME, "user2@ns0.test", "--format", "json"])).out)).toMatchObject({
      weakPassword: false,
    });
    await until(
      async () =>
        (await inbox("user2@ns0.test", "New-adopted-pass-1", true).catch(() => undefined)) ? true : undefined,
      30_000,
      "the new password to log in",
    );
    expect(await loginRefused("user2@ns0.test", passwordOf("user2@ns0.test"), true)).toBe(true);
    const gone = fixture.mailboxes.find((m) => m.address === "user30@ns4.test");
    const deleted = await harness.cli(["delvmail", NAME, "user30@ns4.test", "--yes"]);
    expect(deleted.code, deleted.err).toBe(0);
    await until(async () => (existsSync(gone?.home ?? "") ? undefined : true), 30_000, "the adopted maildir removed");
    expect(await loginRefused("user30@ns4.test", passwordOf("user30@ns4.test"), true)).toBe(true);

    // A second run changes nothing.
    const again = await harness.cli(["vnode", "adopt", NAME, "--yes", "--json"]);
    expect(again.code, again.err).toBe(0);
    const second = JSON.parse(again.out) as {
      switched: boolean;
      imported: Record<string, { added: number; updated: number }>;
    };
    expect(second.switched).toBe(false);
    // user30@ns4 was deleted here, so NetServa's row comes back once; nothing else is touched.
    expect(second.imported["mailboxes"]).toMatchObject({ added: 1, updated: 0 });
    expect(second.imported["domains"]).toMatchObject({ added: 0, updated: 0 });

    // The way back.
    s.setPhase("rollback");
    const backStarted = performance.now();
    const back = await harness.cli(["vnode", "adopt", NAME, "--rollback", "--yes", "--json"]);
    const backSeconds = (performance.now() - backStarted) / 1000;
    expect(back.code, back.err + back.out).toBe(0);
    const rolled = JSON.parse(back.out) as {
      managed: boolean;
      restored: Array<{ path: string; sha256: string; removed: boolean }>;
    };
    expect(rolled.managed).toBe(false);
    for (const f of netservaFiles) {
      expect(sha(f)).toBe(original.get(f));
      expect(rolled.restored.find((r) => r.path === f)?.sha256).toBe(original.get(f));
    }
    expect(existsSync(paths.dovecotSqlConf)).toBe(false);
    expect(sha(fixture.sysadmDb)).toBe(sysadmBefore);
    s.setPhase("rolled-back");
    await until(
      async () => ((await statusRow())?.["management"] === "unmanaged" ? true : undefined),
      60_000,
      "unmanaged again",
    );
    // NetServa's configuration serves: its plain-text login with the old password (its DB never
    // saw the chvmail above), the old message there.
    for (const user of ["user4@ns0.test", "user2@ns0.test", "user7@ns4.test"]) {
      const ids = await inbox(user, passwordOf(user), false);
      expect(ids).toContain(oldMessageId(user));
    }
    const acceptedAfter = s.accepted.size;
    await until(
      async () => (s.accepted.size >= acceptedAfter + 5 ? true : undefined),
      60_000,
      "the stream to deliver via NetServa again",
    );
    await s.stop();

    // Nothing lost: every accepted message is in its recipient's INBOX exactly once.
    expect(s.refused.map((r) => `${r.message.phase}: ${r.reply}`)).toEqual([]);
    expect(s.abandoned.map((r) => `${r.message.phase}: ${r.reason}`)).toEqual([]);
    const accepted = [...s.accepted.values()];
    let undelivered: typeof accepted = [];
    const lost = await until(
      async () => {
        const copies = new Map<string, number>();
        for (const user of recipients)
          for (const id of await inbox(user, passwordOf(user), false)) copies.set(id, (copies.get(id) ?? 0) + 1);
        const missingIds = accepted.filter((m) => !copies.has(m.id));
        undelivered = missingIds;
        const duplicated = accepted.filter((m) => (copies.get(m.id) ?? 0) > 1);
        return missingIds.length === 0 ? { missingIds, duplicated } : undefined;
      },
      120_000,
      "every accepted message delivered",
    ).catch(async (error: unknown) => {
      throw new Error(
        `${String(error)}\n${await whereMailWent(paths.postfixLog, paths.dovecotLog, paths.postfixDir, undelivered).then((w) => `not delivered: ${w}`)}`,
      );
    });
    // A repeat says where each copy came from: its phase and Postfix's lines for it.
    const repeats = lost.duplicated.length
      ? `duplicated: ${await whereMailWent(paths.postfixLog, paths.dovecotLog, paths.postfixDir, lost.duplicated)}`
      : "";
    expect(
      lost.duplicated.map((m) => `${m.phase} ${m.id}`),
      repeats,
    ).toEqual([]);
    const phases = Object.fromEntries([...s.tally].map(([phase, t]) => [phase, t.sent]));
    for (const phase of ["adopt", "rollback"]) expect(phases[phase] ?? 0).toBeGreaterThan(0);
    // Observations for the README, never assertions.
    console.log(
      `adopt-live: vnode adopt ${adoptSeconds.toFixed(1)} s, --rollback ${backSeconds.toFixed(1)} s; ${accepted.length} messages accepted and delivered, by phase ${JSON.stringify(phases)}`,
    );
  }, 900_000);
});
