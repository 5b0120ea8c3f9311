// A full filesystem on a real vnode (issue 13): a real agent process with real Postfix and Dovecot
// in a network namespace, driven by a real controller, with small tmpfs mounts under its --root.
// (a) The maildirs' filesystem full: Postfix accepts mail into its queue, Dovecot's LMTP answers a
//     temporary failure, Postfix defers (no bounce), health names the full filesystem, and once
//     space is freed every queued message is delivered (counted by Message-ID over IMAP).
// (b) The filesystem holding the config, the agent's state and the Postfix queue full: Postfix
//     answers 452 4.3.1 (the sender keeps the mail), a config change is refused saying "no space
//     left on device" and naming the file, the old config stays byte for byte with nothing staged
//     or half-written left, the agent keeps running, and after space is freed the change goes live.
// The mounts are made before the agent starts (its `ip netns exec` copies the host's mount table;
// the host's / is private, so later mounts would not reach it) and checked in the daemons' own
// /proc/PID/mountinfo. Limits only catch hangs; seconds go to the chaos report.
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request as httpsRequest } from "node:https";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVnodePaths } from "../../agent/paths.ts";
import { chaosFull, recordChaos } from "../chaos/report.ts";
import { buildMessage, sendMail, type SendOutcome } from "../helpers/mail-smtp.ts";
import { startMailFleet, until, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";
import {
  bindMount,
  fillInodes,
  fillUp,
  freeBytes,
  freeUp,
  mountTmpfs,
  tempFilesUnder,
  unmountAll,
} from "../helpers/tmpfs.ts";

const isRoot = process.getuid?.() === 0;
const PASSWORD = "Full-disk-pass-1";
const MAIL_FS_BYTES = 32 * 1024 * 1024;
/** etc/ and var/ of the second vnode on one tmpfs: room for Postfix's 1.5 × message_size_limit. */
const SYSTEM_FS_BYTES = 48 * 1024 * 1024;
const ETC_FS_BYTES = 8 * 1024 * 1024;
/** Room for the domain's and alice's maildir, not for thousands of messages. */
const MAIL_FS_INODES = 4000;

let fleet: MailFleet;
let mailVnode: FleetVnode; // (a): srv/ on a tmpfs
let sysVnode: FleetVnode; // (b): etc/ and var/ on one tmpfs
let etcVnode: FleetVnode | undefined; // chaosFull: only etc/ on a tmpfs (staging and journal roomy)
let inodeVnode: FleetVnode | undefined; // chaosFull: srv/ on a tmpfs with few inodes
let systemDisk = "";

interface ServiceJson {
  name: string;
  state: string;
}
interface StatusJson {
  problems: string[];
  generation: number;
  appliedGeneration: number;
  refused: { generation: number; reason: string } | null;
  services: ServiceJson[];
  mail: { queue: { deferred: number; active: number; incoming: number } | null } | null;
}

async function mailStatus(v: FleetVnode): Promise<StatusJson | undefined> {
  const r = await fleet.harness.cli(["mail:status", v.name, "--json"]);
  return r.code === 0 ? (JSON.parse(r.out) as StatusJson) : undefined;
}

const imap = (v: FleetVnode, servername = v.mailHostname): ImapFlow => {
  const client = new ImapFlow({
    host: v.ns.nsAddress,
    port: 993,
    secure: true,
    auth: { user: `alice@${v.domain}`, pass: PASSWORD },
    tls: { ca: fleet.caPem, servername },
    logger: false,
  });
  client.on("error", () => undefined);
  return client;
};

/** How many times each Message-ID is in alice's INBOX, searched over IMAP. */
async function countInInbox(v: FleetVnode, ids: readonly string[], servername?: string): Promise<number[]> {
  const client = imap(v, servername);
  await client.connect();
  try {
    const lock = await client.getMailboxLock("INBOX");
    try {
      const counts: number[] = [];
      for (const id of ids) {
        const found = await client.search({ header: { "message-id": id } });
        counts.push(Array.isArray(found) ? found.length : 0);
      }
      return counts;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => client.close());
  }
}

async function send(v: FleetVnode, subject: string): Promise<{ id: string; sent: SendOutcome }> {
  const message = buildMessage({ from: "bob@sender.test", to: `alice@${v.domain}`, subject, body: "a full disk." });
  const sent = await sendMail({
    host: v.ns.nsAddress,
    port: 25,
    ca: fleet.caPem,
    servername: v.mailHostname,
    from: "bob@sender.test",
    to: [`alice@${v.domain}`],
    data: message.data,
  });
  return { id: message.id, sent };
}

/** Mount points of type tmpfs (or binds of one) as the process `pid` sees them. */
function mountsSeenBy(pid: number): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, "utf8")
    .split("\n")
    .filter((l) => / - tmpfs /.test(l))
    .map((l) => l.split(" ")[4] ?? "");
}

/** The agent's /metrics, read with the controller's certificate. */
function scrape(v: FleetVnode): Promise<string> {
  const [host, port] = v.metricsAddress.split(":");
  const tls = {
    ca: fleet.caPem,
    cert: readFileSync(join(fleet.harness.home, "controller.crt"), "utf8"),
    key: readFileSync(join(fleet.harness.home, "controller.key"), "utf8"),
  };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host, port: Number(port), path: "/metrics", ...tls, servername: v.name, timeout: 10_000 },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** A netserva_fs_* gauge of one role, as the agent's /metrics says. */
async function roleMetric(v: FleetVnode, name: string, role: string): Promise<number | undefined> {
  const m = new RegExp(`^${name}\\{[^}]*role="${role}"[^}]*\\} (\\d+)$`, "m").exec(await scrape(v));
  return m ? Number(m[1]) : undefined;
}

const pidOf = (file: string): number => Number.parseInt(readFileSync(file, "utf8").trim(), 10);

/** sha256 of every file under `dir` but the test's filler and apply's temp files (path → digest):
 * the config "byte for byte". */
function digests(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile() && !e.name.startsWith(".filler-") && !/\.ns-[0-9a-f]{8}$/.test(e.name)) {
      const file = join(e.parentPath, e.name);
      out.set(file, createHash("sha256").update(readFileSync(file)).digest("hex"));
    }
  return out;
}

/** No temp file, staged copy or undo journal is left by the refused applies. The reconciler
 * retries meanwhile (each try fails the same way), so this waits for a moment between tries. */
async function nothingLeft(v: FleetVnode): Promise<void> {
  const paths = createVnodePaths(v.root);
  const leftovers = (): string[] => [
    ...tempFilesUnder(join(v.root, "etc")),
    ...tempFilesUnder(paths.stateDir),
    ...[paths.stagingDir, join(paths.backupDir, "pending-apply.json")].filter((p) => existsSync(p)),
  ];
  await until(
    async () => (leftovers().length === 0 ? true : undefined),
    30_000,
    "no leftovers of the refused apply",
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}: ${leftovers().join(", ")}`);
  });
}

const postfixLog = (v: FleetVnode): string => {
  try {
    return readFileSync(createVnodePaths(v.root).postfixLog, "utf8");
  } catch {
    return "";
  }
};

/** (a) and its inode variant: the maildirs' filesystem out of space or inodes. */
async function maildirsFull(v: FleetVnode, kind: "space" | "inodes"): Promise<void> {
  const paths = createVnodePaths(v.root);
  // The daemons see the tmpfs (their mount namespace was copied with it).
  expect(mountsSeenBy(pidOf(paths.dovecotPidFile))).toContain(paths.mailRoot);
  expect(mountsSeenBy(v.agent.child.pid ?? 0)).toContain(paths.mailRoot);
  const before = await send(v, "before the disk filled");
  expect(before.sent.stage).toBe("done");
  await until(
    async () => ((await countInInbox(v, [before.id]).catch(() => [0]))[0] === 1 ? true : undefined),
    60_000,
    "the first message in the INBOX",
  );

  const filler = kind === "space" ? fillUp(paths.mailRoot) : fillInodes(paths.mailRoot);
  if (kind === "space") expect(freeBytes(paths.mailRoot)).toBe(0);
  else expect(statfsSync(paths.mailRoot).ffree).toBe(0);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const m = await send(v, `while the disk is full ${i}`);
    // Accepted into the queue (on another filesystem): the sender is done with it.
    expect(m.sent.stage, m.sent.reply.text).toBe("done");
    ids.push(m.id);
  }
  const deferred = await until(
    async () => {
      const lines = postfixLog(v)
        .split("\n")
        .filter((l) => l.includes(`to=<alice@${v.domain}>`) && l.includes("status=deferred"));
      return lines.length >= ids.length ? lines : undefined;
    },
    60_000,
    "Postfix to defer the messages",
  );
  console.log(`full-filesystem (a, ${kind}): ${deferred[0]}`);
  const fullProblem = await until(
    async () =>
      (await mailStatus(v))?.problems.find(
        (p) => p.includes(paths.mailRoot) && (kind === "space" ? /full: 0 bytes free/ : /full: no inode free/).test(p),
      ),
    30_000,
    "mail:status to name the full filesystem",
  );
  console.log(`full-filesystem (a, ${kind}) problem: ${fullProblem}`);
  // The metric the NetservaFilesystemFull alert reads (alert-rules.test.yml fires it on this).
  const metric = kind === "space" ? "netserva_fs_available_bytes" : "netserva_fs_free_inodes";
  await until(
    async () => ((await roleMetric(v, metric, "mail")) === 0 ? true : undefined),
    30_000,
    `${metric}{role=mail} at 0`,
  );
  expect(postfixLog(v)).not.toMatch(/status=bounced/);

  freeUp(filler);
  const freed = Date.now();
  // Postfix would retry by itself within queue_run_delay (300 s); flush as an operator would.
  await v.ns.run("/usr/sbin/postqueue", ["-c", paths.postfixDir, "-f"]);
  const counts = await until(
    async () => {
      const c = await countInInbox(v, ids);
      return c.every((n) => n >= 1) ? c : undefined;
    },
    120_000,
    "every deferred message in the INBOX",
  );
  const seconds = (Date.now() - freed) / 1000;
  const lost = counts.filter((n) => n === 0).length;
  const duplicated = counts.reduce((sum, n) => sum + Math.max(0, n - 1), 0);
  expect(lost).toBe(0);
  expect(duplicated).toBe(0);
  expect(postfixLog(v)).not.toMatch(/status=bounced/);
  await until(
    async () => ((await mailStatus(v))?.problems.some((p) => p.includes(paths.mailRoot)) ? undefined : true),
    30_000,
    "the full-filesystem problem to clear",
  );
  recordChaos({
    fault: "filesystem full",
    where: kind === "space" ? "maildirs (srv/)" : "maildirs (srv/): no inode left",
    times: 1,
    config: "-",
    mailAccepted: true,
    converged: true,
    secondsToConverge: seconds,
    lost,
    duplicated,
    note: `${ids.length} messages deferred by LMTP, none bounced; delivered after space was freed`,
  });
}

describe.skipIf(!isRoot)("a full filesystem on a real vnode", () => {
  beforeAll(async () => {
    fleet = await startMailFleet(chaosFull ? ["ffm", "ffs", "ffe", "ffi"] : ["ffm", "ffs"], "ffull", {
      async beforeAgent(_ns, name, root) {
        if (name === "ffm") {
          await mountTmpfs(join(root, "srv"), MAIL_FS_BYTES);
          return;
        }
        if (name === "ffi") {
          await mountTmpfs(join(root, "srv"), MAIL_FS_BYTES, "0755", MAIL_FS_INODES);
          return;
        }
        if (name === "ffe") {
          await mountTmpfs(join(root, "etc"), ETC_FS_BYTES);
          return;
        }
        // One filesystem for etc/ and var/ (config, agent state, Postfix queue), as on a vnode
        // whose root filesystem holds them all.
        systemDisk = mkdtempSync(join(tmpdir(), "nsm-ffull-disk-"));
        await mountTmpfs(systemDisk, SYSTEM_FS_BYTES);
        await bindMount(join(systemDisk, "etc"), join(root, "etc"));
        await bindMount(join(systemDisk, "var"), join(root, "var"));
      },
    });
    [mailVnode, sysVnode, etcVnode, inodeVnode] = fleet.vnodes as [
      FleetVnode,
      FleetVnode,
      FleetVnode | undefined,
      FleetVnode | undefined,
    ];
    for (const v of fleet.vnodes) {
      const added = await fleet.harness.cli(
        // A quota within the small tmpfs (the storage rule refuses quotas beyond the filesystem).
        ["addvmail", v.name, `alice@${v.domain}`, "--password-stdin", "--quota", "10M"],
        `${PASSWORD}\n`,
      );
      expect(added.code, added.err).toBe(0);
    }
  }, 300_000);

  afterAll(async () => {
    // Lazily, before the roots are removed: the daemons' copies go when their namespace dies.
    await unmountAll();
    await fleet?.close();
    if (systemDisk) rmSync(systemDisk, { recursive: true, force: true });
  });

  it("maildirs' filesystem full: mail is deferred (not bounced), health names it, and all is delivered once space is back", async () => {
    await maildirsFull(mailVnode, "space");
  }, 300_000);

  it.runIf(chaosFull)(
    "maildirs' filesystem out of inodes: the same, and health says no inode is free",
    async () => {
      await maildirsFull(inodeVnode as FleetVnode, "inodes");
    },
    300_000,
  );

  it("config, state and queue filesystem full: 452 4.3.1 to new mail, an apply refused with the old config kept, and it goes live once space is back", async () => {
    const v = sysVnode;
    const paths = createVnodePaths(v.root);
    expect(mountsSeenBy(pidOf(paths.postfixPidFile))).toEqual(
      expect.arrayContaining([join(v.root, "etc"), join(v.root, "var")]),
    );
    const before = await send(v, "before the disk filled");
    expect(before.sent.stage).toBe("done");
    await until(
      async () => ((await countInInbox(v, [before.id]).catch(() => [0]))[0] === 1 ? true : undefined),
      60_000,
      "the first message in the INBOX",
    );
    const start = await until(
      async () => {
        const s = await mailStatus(v);
        return s && s.appliedGeneration === s.generation ? s : undefined;
      },
      60_000,
      "the vnode at its generation",
    );
    const etc = join(v.root, "etc");
    const old = digests(etc);
    const manifestBefore = readFileSync(paths.manifest, "utf8");

    const filler = fillUp(systemDisk);
    expect(freeBytes(systemDisk)).toBe(0);

    // New mail: Postfix will not take what it cannot queue; the sender keeps it (no loss).
    const refusedMail = await send(v, "while the disk is full");
    expect(refusedMail.sent.stage).toBe("mail");
    expect(refusedMail.sent.reply.code).toBe(452);
    expect(refusedMail.sent.reply.text).toMatch(/4\.3\.1 Insufficient system storage/);

    const newHost = `mail2.${v.domain}`;
    const set = await fleet.harness.cli(["vnode", "set", v.name, "--mail-hostname", newHost]);
    console.log(`full-filesystem (b) vnode set: ${set.err.trim()}`);
    expect(set.err).toMatch(new RegExp(`no space left on device: cannot write ${v.root}/`));
    // A mailbox added meanwhile is refused the same way (the vnode lags: the whole state goes).
    const bob = await fleet.harness.cli(
      ["addvmail", v.name, `bob@${v.domain}`, "--password-stdin", "--quota", "10M"],
      `${PASSWORD}\n`,
    );
    expect(bob.err).toMatch(/no space left on device/);
    expect(v.agent.child.exitCode).toBeNull();
    expect(digests(etc)).toEqual(old);
    expect(readFileSync(paths.manifest, "utf8")).toBe(manifestBefore);
    await nothingLeft(v);
    const refused = await until(
      async () => {
        const s = await mailStatus(v);
        return s?.refused && s.problems.some((p) => p.includes(`${paths.stateDir} (state) is full`)) ? s : undefined;
      },
      30_000,
      "mail:status to show the refusal and the full filesystem",
    );
    expect(refused.refused?.reason).toMatch(/no space left on device/);
    expect(refused.appliedGeneration).toBe(start.appliedGeneration);
    console.log(`full-filesystem (b) problems: ${JSON.stringify(refused.problems)}`);
    expect(refused.problems.join("\n")).toMatch(
      new RegExp(
        `filesystem of ${paths.postfixQueueDir} \\(queue\\), ${paths.postfixDir} \\(config\\), ${paths.stateDir} \\(state\\) is full`,
      ),
    );
    for (const role of ["queue", "config", "state"])
      expect(await roleMetric(v, "netserva_fs_available_bytes", role)).toBe(0);

    freeUp(filler);
    const freed = Date.now();
    const done = await until(
      async () => {
        const s = await mailStatus(v);
        return s && s.appliedGeneration === s.generation && s.generation > start.generation ? s : undefined;
      },
      120_000,
      "the change to go live after space is freed",
    );
    const seconds = (Date.now() - freed) / 1000;
    expect(done.refused).toBeNull();
    expect(readFileSync(paths.postfixMainCf, "utf8")).toMatch(
      new RegExp(`^myhostname = ${newHost.replace(/\./g, "\\.")}$`, "m"),
    );
    expect(v.agent.child.exitCode).toBeNull();
    const after = await send(v, "after space is back");
    expect(after.sent.stage).toBe("done");
    const toBob = await sendMail({
      host: v.ns.nsAddress,
      port: 25,
      ca: fleet.caPem,
      servername: newHost,
      from: "carol@sender.test",
      to: [`bob@${v.domain}`],
      data: buildMessage({ from: "carol@sender.test", to: `bob@${v.domain}`, subject: "hi", body: "bob is live." })
        .data,
    });
    expect(toBob.stage, toBob.reply.text).toBe("done");
    await until(
      async () => ((await countInInbox(v, [after.id], newHost).catch(() => [0]))[0] === 1 ? true : undefined),
      60_000,
      "the message sent after the disk was freed in the INBOX",
    );
    recordChaos({
      fault: "filesystem full",
      where: "queue (var/spool/postfix): new mail",
      times: 1,
      config: "-",
      mailAccepted: true,
      converged: true,
      lost: 0,
      duplicated: 0,
      note: "452 4.3.1 at MAIL FROM while full (the sender keeps the message); accepted once space is back",
    });
    recordChaos({
      fault: "filesystem full",
      where: "config + agent state (etc/, var/lib): apply",
      times: 1,
      config: "old",
      mailAccepted: true,
      converged: true,
      secondsToConverge: seconds,
      lost: 0,
      duplicated: 0,
      note: "refused 'no space left on device'; old config byte for byte; live after space freed",
    });
  }, 300_000);

  it.runIf(chaosFull)(
    "config filesystem full alone: refused while writing the new files aside, mail flows meanwhile, live once space is back",
    async () => {
      const v = etcVnode as FleetVnode;
      const paths = createVnodePaths(v.root);
      const etc = join(v.root, "etc");
      expect(mountsSeenBy(pidOf(paths.postfixPidFile))).toContain(etc);
      const start = await until(
        async () => {
          const s = await mailStatus(v);
          return s && s.appliedGeneration === s.generation ? s : undefined;
        },
        60_000,
        "the vnode at its generation",
      );
      const old = digests(etc);
      const filler = fillUp(etc);
      const newHost = `mail2.${v.domain}`;
      const set = await fleet.harness.cli(["vnode", "set", v.name, "--mail-hostname", newHost]);
      expect(set.err).toMatch(
        new RegExp(`config refused at writing; previous config kept: no space left on device: cannot write ${etc}/`),
      );
      expect(v.agent.child.exitCode).toBeNull();
      expect(digests(etc)).toEqual(old);
      await nothingLeft(v);
      // The queue and the maildirs are elsewhere: mail is accepted and delivered throughout.
      const during = await send(v, "while etc/ is full");
      expect(during.sent.stage).toBe("done");
      await until(
        async () => ((await countInInbox(v, [during.id]).catch(() => [0]))[0] === 1 ? true : undefined),
        60_000,
        "the message sent while etc/ was full in the INBOX",
      );
      freeUp(filler);
      const freed = Date.now();
      await until(
        async () => {
          const s = await mailStatus(v);
          return s && s.appliedGeneration === s.generation && s.generation > start.generation ? s : undefined;
        },
        120_000,
        "the change to go live after space is freed",
      );
      recordChaos({
        fault: "filesystem full",
        where: "config alone (etc/): apply",
        times: 1,
        config: "old",
        mailAccepted: true,
        converged: true,
        secondsToConverge: (Date.now() - freed) / 1000,
        lost: 0,
        duplicated: 0,
        note: "refused while writing aside; mail delivered meanwhile",
      });
    },
    300_000,
  );
});
