// The whole path, as an operator drives it: CLI → service → DB → compiler → command → agent (its
// own process in a network namespace, private --root) → renderer → files → Postfix/Dovecot, then
// real SMTP and IMAP clients. Also: reconcile after a hand edit, deactivate, delete.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";
import { createTestNetns, type TestNetns } from "../helpers/netns.ts";
import { startAgentProcess, type AgentProcess } from "../helpers/agent-process.ts";
import { buildMessage, sendMail } from "../helpers/mail-smtp.ts";
import { canLogin } from "../helpers/mail-imap.ts";

const isRoot = process.getuid?.() === 0;
const HOST = "mail.e2e.test";
const DOMAIN = "e2e.test";

let harness: Harness;
let ns: TestNetns;
let agent: AgentProcess | undefined;
let root = "";
let caPem = "";
const logDir = mkdtempSync(join(tmpdir(), "nsm-e2e-logs-"));

const imap = (user: string, pass: string): ImapFlow =>
  new ImapFlow({
    host: ns.nsAddress,
    port: 993,
    secure: true,
    auth: { user, pass },
    tls: { ca: caPem, servername: HOST },
    logger: false,
  });
const smtp = (port: number) => ({ host: ns.nsAddress, port, ca: caPem, servername: HOST });

async function until<T>(probe: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

describe.skipIf(!isRoot)("end to end: CLI to live mail on a vnode", () => {
  beforeAll(async () => {
    harness = await startHarness({ healthIntervalMs: 500 });
    caPem = readFileSync(join(harness.home, "ca", "ca.crt"), "utf8");
    ns = await createTestNetns("e2e");
    root = mkdtempSync(join(tmpdir(), "nsm-e2e-root-"));
    chmodSync(root, 0o755);
    const port = 7444;
    const { home: agentHome } = await harness.enrollVnode("vn1", `${ns.nsAddress}:${port}`, "agent-vn1");
    const set = await harness.cli(["vnode", "set", "vn1", "--mail-hostname", HOST, "--mail-listen", ns.nsAddress]);
    expect(set.code).toBe(0);
    agent = await startAgentProcess({ ns, home: agentHome, root, port, logDir });
    // The reconciler brings the new vnode to its generation: TLS from the CA, daemons started.
    await until(
      async () => {
        const status = JSON.parse((await harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
        const row = status.find((r) => r["vnode"] === "vn1");
        return row && row["connected"] === true && row["appliedGeneration"] === row["generation"] ? row : undefined;
      },
      60_000,
      "the reconciler to apply the first state",
    );
    const domain = await harness.cli(["addvmaildomain", "vn1", DOMAIN, "--skip-dns-check"]);
    expect(domain.code, domain.err).toBe(0);
    // The mailbox several tests deliver to; each test makes any other mailbox it needs itself.
    const alice = await harness.cli(
      ["addvmail", "vn1", `alice@${DOMAIN}`, "--password-stdin"],
      "Alice-secret-pass-1\n",
    );
    expect(alice.code, alice.err).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await ns?.destroy();
    await harness?.close();
    if (root) rmSync(root, { recursive: true, force: true });
    if (!process.env["KEEP_LOGS"]) rmSync(logDir, { recursive: true, force: true });
  });

  it("addvmail makes a mailbox that logs in over IMAP at the first attempt after the command returns", async () => {
    // Ready: the controller's link is up and vn1 is at its generation (polled).
    await until(
      async () => {
        const status = JSON.parse((await harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
        const row = status.find((r) => r["vnode"] === "vn1");
        return row && row["connected"] === true && row["appliedGeneration"] === row["generation"] ? row : undefined;
      },
      60_000,
      "vn1 connected and at its generation",
    );
    const added = await harness.cli(["addvmail", "vn1", `dora@${DOMAIN}`, "--password-stdin"], "Dora-secret-pass-1\n");
    expect(added.code, added.err).toBe(0);
    // "live on vn1 at generation N": the row is in the vnode's lookup table when the command
    // returns, and Dovecot reads it per login (no reload, no cache to expire).
    expect(added.out).toMatch(/live on vn1 at generation \d+/);
    expect(await canLogin(imap(`dora@${DOMAIN}`, "Dora-secret-pass-1"))).toBe(true);
  });

  it("a new mailbox is warmed: Dovecot has opened it before any mail or login reaches it", async () => {
    const added = await harness.cli(["addvmail", "vn1", `walt@${DOMAIN}`, "--password-stdin"], "Walt-secret-pass-1\n");
    expect(added.code, added.err).toBe(0);
    // The agent asked quota-status about walt once (as Postfix does at RCPT): Dovecot opened the
    // new mailbox then, writing its INBOX index and uid list (the agent makes only the folders).
    const maildir = join(root, "srv", DOMAIN, "msg", "walt", "Maildir");
    await until(
      async () =>
        existsSync(join(maildir, "dovecot.index.log")) && existsSync(join(maildir, "dovecot-uidlist"))
          ? true
          : undefined,
      30_000,
      "walt's mailbox opened by Dovecot",
    );
    expect(await canLogin(imap(`walt@${DOMAIN}`, "Walt-secret-pass-1"))).toBe(true);
  });

  it("--dry-run prints the lookup rows the vnode would change, and changes nothing", async () => {
    const dry = await harness.cli(["addvmail", "vn1", `dave@${DOMAIN}`, "--dry-run"]);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toContain("would change");
    expect(dry.out).toContain(`mailbox dave@${DOMAIN}`);
    expect((await harness.cli(["shvmail", "vn1", `dave@${DOMAIN}`])).code).toBe(3);
  });

  it("delivers on port 25 and the message is read back over IMAP", async () => {
    const message = buildMessage({
      from: "bob@sender.test",
      to: `alice@${DOMAIN}`,
      subject: "e2e hello",
      body: "hello from the e2e test",
    });
    const sent = await sendMail({ ...smtp(25), from: "bob@sender.test", to: [`alice@${DOMAIN}`], data: message.data });
    expect(sent.stage, sent.reply.text).toBe("done");
    const client = imap(`alice@${DOMAIN}`, "Alice-secret-pass-1");
    await client.connect();
    try {
      const found = await until(
        async () => {
          const lock = await client.getMailboxLock("INBOX");
          try {
            const uids = await client.search({ header: { "message-id": message.id } }, { uid: true });
            return uids && uids.length > 0 ? uids : undefined;
          } finally {
            lock.release();
          }
        },
        10_000,
        "the message in INBOX",
      );
      expect(found.length).toBe(1);
    } finally {
      await client.logout();
    }
  });

  it("refuses an unknown recipient at RCPT with 550 5.1.1", async () => {
    const message = buildMessage({ from: "bob@sender.test", to: `nobody@${DOMAIN}`, subject: "x", body: "x" });
    const sent = await sendMail({ ...smtp(25), from: "bob@sender.test", to: [`nobody@${DOMAIN}`], data: message.data });
    expect(sent.stage).toBe("rcpt");
    expect(sent.reply.code).toBe(550);
    expect(sent.reply.text).toContain("5.1.1");
  });

  it("chvmail --active 0 refuses the mailbox at once", async () => {
    expect(
      (await harness.cli(["addvmail", "vn1", `carol@${DOMAIN}`, "--password-stdin"], "Carol-secret-pass-1")).code,
    ).toBe(0);
    const changed = await harness.cli(["chvmail", "vn1", `carol@${DOMAIN}`, "--active", "0"]);
    expect(changed.code, changed.err).toBe(0);
    expect(await canLogin(imap(`carol@${DOMAIN}`, "Carol-secret-pass-1"))).toBe(false);
    const message = buildMessage({ from: "bob@sender.test", to: `carol@${DOMAIN}`, subject: "x", body: "x" });
    const sent = await sendMail({ ...smtp(25), from: "bob@sender.test", to: [`carol@${DOMAIN}`], data: message.data });
    expect(sent.stage).toBe("rcpt");
    expect(sent.reply.code).toBe(550);
  });

  it("addvalias forwards to a mailbox", async () => {
    const alias = await harness.cli(["addvalias", "vn1", `sales@${DOMAIN}`, `alice@${DOMAIN}`]);
    expect(alias.code, alias.err).toBe(0);
    const message = buildMessage({
      from: "bob@sender.test",
      to: `sales@${DOMAIN}`,
      subject: "alias",
      body: "via alias",
    });
    const sent = await sendMail({ ...smtp(25), from: "bob@sender.test", to: [`sales@${DOMAIN}`], data: message.data });
    expect(sent.stage, sent.reply.text).toBe("done");
  });

  it("the reconciler puts back a hand-edited main.cf", async () => {
    const mainCf = join(root, "etc", "postfix", "main.cf");
    const original = readFileSync(mainCf, "utf8");
    writeFileSync(mainCf, original + "\n# hand edit\n");
    // A deadline for a busy machine, not a speed claim: a whole-state apply runs every checker.
    await until(
      async () => (readFileSync(mainCf, "utf8") === original ? true : undefined),
      60_000,
      "main.cf to be restored",
    ).catch(async (error: unknown) => {
      const rows = await harness.db
        .em()
        .execute(
          "select actor, command, result, error, at from command_log where command = 'reconcile' order by id desc limit 3",
        );
      const status = (await harness.cli(["status", "--json"])).out;
      throw new Error(`${(error as Error).message}; reconciles: ${JSON.stringify(rows)}; status: ${status}`);
    });
  }, 90_000);

  it("delvmail --yes removes the mailbox: no login, 550", async () => {
    expect(
      (await harness.cli(["addvmail", "vn1", `erin@${DOMAIN}`, "--password-stdin"], "Erin-secret-pass-1")).code,
    ).toBe(0);
    expect(await canLogin(imap(`erin@${DOMAIN}`, "Erin-secret-pass-1"))).toBe(true);
    const removed = await harness.cli(["delvmail", "vn1", `erin@${DOMAIN}`, "--yes"]);
    expect(removed.code, removed.err).toBe(0);
    expect(await canLogin(imap(`erin@${DOMAIN}`, "Erin-secret-pass-1"))).toBe(false);
    const message = buildMessage({ from: "bob@sender.test", to: `erin@${DOMAIN}`, subject: "x", body: "x" });
    const sent = await sendMail({ ...smtp(25), from: "bob@sender.test", to: [`erin@${DOMAIN}`], data: message.data });
    expect(sent.reply.code).toBe(550);
  });

  it("mail keeps flowing while the controller is away", async () => {
    await harness.stopController();
    try {
      await mailWithoutController();
    } finally {
      // Back as the other tests found it: a controller with its link to vn1 up.
      await harness.startController();
      await until(
        async () => {
          const status = JSON.parse((await harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
          return status.find((r) => r["vnode"] === "vn1" && r["connected"] === true);
        },
        60_000,
        "the restarted controller's link to vn1",
      );
    }
  });
});

async function mailWithoutController(): Promise<void> {
  const message = buildMessage({
    from: "bob@sender.test",
    to: `alice@${DOMAIN}`,
    subject: "no controller",
    body: "still here",
  });
  const sent = await sendMail({ ...smtp(25), from: "bob@sender.test", to: [`alice@${DOMAIN}`], data: message.data });
  expect(sent.stage, sent.reply.text).toBe("done");
  expect(await canLogin(imap(`alice@${DOMAIN}`, "Alice-secret-pass-1"))).toBe(true);
}
