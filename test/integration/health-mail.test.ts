// Mail health end to end: the agent's report (daemon states and versions, queue, Dovecot users,
// disk, quota, TLS expiry) lands in mail_services and mail:status; usage flows into shvmail;
// a stopped Postfix is flagged as failed; health history is kept.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImapFlow } from "imapflow";
import { buildMessage, sendMail } from "../helpers/mail-smtp.ts";
import { startMailFleet, until, type MailFleet, type FleetVnode } from "../helpers/mail-fleet.ts";

const isRoot = process.getuid?.() === 0;
let fleet: MailFleet;
let vn: FleetVnode;

interface StatusJson {
  health: string;
  stale: boolean;
  generationLag: number;
  problems: string[];
  services: Array<{ name: string; state: string; version: string | null }>;
  mail: null | {
    queue: { active: number; deferred: number } | null;
    dovecot: { users: number | null };
    filesystem: { sizeBytes: number; usedBytes: number } | null;
    quota: {
      mailboxes: number;
      over80: number;
      over90: number;
      over100: number;
      top: Array<{ address: string; usedBytes: number }>;
    };
    mailTlsNotAfter: string | null;
    errors: string[];
  };
  history: unknown[];
}

const status = async (name = "hv1"): Promise<StatusJson> => {
  const r = await fleet.harness.cli(["mail:status", name, "--json", "--history", "10"]);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as StatusJson;
};

describe.skipIf(!isRoot)("mail health in mail_services and mail:status", () => {
  beforeAll(async () => {
    // hv2 is only for the test that stops its Postfix and its agent: hv1 stays healthy for the
    // others, whatever order they run in.
    fleet = await startMailFleet(["hv1", "hv2"], "health");
    vn = fleet.vnodes[0] as FleetVnode;
    const added = await fleet.harness.cli(
      ["addvmail", "hv1", `alice@${vn.domain}`, "--password-stdin", "--quota", "20K"],
      "Alice-secret-pass-1\n",
    );
    expect(added.code, added.err).toBe(0);
  }, 180_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it("reports daemons, queue, disk and TLS, fresh and at its generation", async () => {
    const s = await until(
      async () => {
        const v = await status();
        return v.mail && v.mail.quota.mailboxes === 1 ? v : undefined;
      },
      15_000,
      "a report with the mailbox",
    );
    expect(s.stale).toBe(false);
    expect(s.generationLag).toBe(0);
    const postfix = s.services.find((x) => x.name === "postfix");
    expect(postfix?.state).toBe("active");
    expect(postfix?.version).toMatch(/^\d+\.\d+/);
    expect(s.services.find((x) => x.name === "dovecot")?.state).toBe("active");
    expect(s.mail?.queue).toMatchObject({ active: 0, deferred: 0 });
    expect(s.mail?.filesystem?.sizeBytes).toBeGreaterThan(0);
    expect(s.mail?.mailTlsNotAfter).toMatch(/^20\d\d-/);
    expect(s.mail?.errors).toEqual([]);
    expect(s.health).toBe("ok");
    const vnodeRow = (await fleet.harness.db
      .em()
      .getConnection()
      .execute("select fs_capacity_bytes from vnodes where name = 'hv1'")) as Array<{
      fs_capacity_bytes: string | number;
    }>;
    expect(Number(vnodeRow[0]?.fs_capacity_bytes)).toBe(s.mail?.filesystem?.sizeBytes);
    expect(s.history.length).toBeGreaterThanOrEqual(1);
  });

  it("counts Dovecot users and flows quota usage into shvmail", async () => {
    const message = buildMessage({
      from: "bob@sender.test",
      to: `alice@${vn.domain}`,
      subject: "fill",
      body: "x".repeat(18_000),
    });
    const sent = await sendMail({
      host: vn.ns.nsAddress,
      port: 25,
      ca: fleet.caPem,
      servername: vn.mailHostname,
      from: "bob@sender.test",
      to: [`alice@${vn.domain}`],
      data: message.data,
    });
    expect(sent.stage, sent.reply.text).toBe("done");
    const client = new ImapFlow({
      host: vn.ns.nsAddress,
      port: 993,
      secure: true,
      auth: { user: `alice@${vn.domain}`, pass: "Alice-secret-pass-1" },
      tls: { ca: fleet.caPem, servername: vn.mailHostname },
      logger: false,
    });
    await client.connect();
    try {
      const s = await until(
        async () => {
          const v = await status();
          return v.mail?.dovecot.users === 1 && v.mail.quota.over80 === 1 ? v : undefined;
        },
        20_000,
        "one Dovecot user and alice over 80%",
      );
      expect(s.mail?.quota.top[0]?.address).toBe(`alice@${vn.domain}`);
      expect(s.problems.join("\n")).toContain("over 90% of quota");
    } finally {
      await client.logout();
    }
    const synced = await fleet.harness.cli(["mail:status", "hv1", "--sync-usage", "--json"]);
    expect(synced.code, synced.err).toBe(0);
    const shown = JSON.parse((await fleet.harness.cli(["shvmail", "hv1", `alice@${vn.domain}`, "--json"])).out) as {
      usage: number | null;
    };
    expect(shown.usage).toBeGreaterThan(18_000);
    // Alice's quota lifted again, and seen so: the other tests expect a healthy hv1, in any order.
    const lifted = await fleet.harness.cli(["chvmail", "hv1", `alice@${vn.domain}`, "--quota", "100M"]);
    expect(lifted.code, lifted.err).toBe(0);
    await until(
      async () => {
        const v = await status();
        return v.mail?.quota.over80 === 0 && v.health === "ok" ? v : undefined;
      },
      30_000,
      "hv1 healthy with alice's quota lifted",
    );
  });

  it("flags a stopped Postfix as failed, and stale health when the agent is gone", async () => {
    const vn = fleet.vnodes[1] as FleetVnode;
    await vn.ns.run("/usr/sbin/postfix", ["-c", `${vn.root}/etc/postfix`, "stop"]);
    const s = await until(
      async () => {
        const v = await status("hv2");
        return v.services.find((x) => x.name === "postfix")?.state === "failed" ? v : undefined;
      },
      15_000,
      "postfix reported failed",
    );
    expect(s.health).toBe("problems");
    expect(s.problems.join("\n")).toMatch(/postfix failed/);
    const table = await fleet.harness.cli(["mail:status"]);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/hv2: postfix failed/);
    await vn.agent.stop();
    const stale = await until(
      async () => {
        const v = await status("hv2");
        return v.stale ? v : undefined;
      },
      25_000,
      "stale health",
    );
    expect(stale.health).toBe("stale");
    expect(stale.problems[0]).toMatch(/health stale/);
  }, 60_000);
});
