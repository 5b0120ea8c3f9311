// The lookup DB under load on a real vnode (namespace + private root): while the agent commits
// mailbox upserts as fast as it can, Postfix (RCPT over 8 SMTP sessions) and Dovecot (IMAP
// logins) keep reading it. In WAL mode readers never wait for the writer; in rollback-journal
// mode Postfix's dict_sqlite died on SQLITE_BUSY ("database is locked") and dropped the client.
// Also: the WAL files' owners/modes, lookups as the real reader users, and drift on a hand edit.
import { execFile, spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { setImmediate as yieldLoop } from "node:timers/promises";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema, StateChangeSchema, type StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { lookupGroupId } from "../../agent/mail/vmail-user.ts";
import { waitUntil } from "../../agent/process.ts";
import { canLogin } from "../helpers/mail-imap.ts";
import { HELO, smtpConnect } from "../helpers/mail-smtp.ts";
import { MAIL_HOSTNAME, createMailVnode, hashPassword, type MailVnode } from "../helpers/mail-vnode.ts";

const exec = promisify(execFile);
const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");
const D = "example.test";
const PASS = "alice-Secret-1";
const SEEDED = 40;
const WRITES = 300;
const SESSIONS = 8;
const LOGIN_LOOPS = 2;

let v: MailVnode;
let hash: string;
const timings: Record<string, number> = {};
const change = (c: Parameters<typeof create<typeof StateChangeSchema>>[1]): StateChange => create(StateChangeSchema, c);
const mode = (path: string): string => (statSync(path).mode & 0o7777).toString(8);
const logText = (file: string): string => (existsSync(file) ? readFileSync(file, "utf8") : "");
/** `postmap -q KEY sqlite:<map>` as the postfix user, inside the namespace (main.cf's addresses live there). */
const postmapAsPostfix = (key: string, map = "virtual-mailboxes") => {
  const [cmd = "", ...pre] = v.ns.wrap;
  return exec(cmd, [
    ...pre,
    "runuser",
    "-u",
    "postfix",
    "--",
    "postmap",
    "-c",
    v.host.paths.postfixDir,
    "-q",
    key,
    `sqlite:${v.host.paths.postfixMap(map)}`,
  ]);
};

describe.skipIf(!canRun)("mail vnode: lookup DB under concurrent writes", () => {
  beforeAll(async () => {
    v = await createMailVnode("lookupc");
    hash = await hashPassword(PASS);
    await v.host.applyState(
      create(DesiredStateSchema, {
        generation: 1n,
        settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [] },
        tls: { certificateChainPem: v.tls.certChainPem, privateKeyPem: v.tls.keyPem },
        domains: [{ domain: D, active: true }],
        mailboxes: [
          { address: `alice@${D}`, passwordHash: hash, active: true },
          ...Array.from({ length: SEEDED }, (_, i) => ({ address: `r${i}@${D}`, passwordHash: hash, active: true })),
        ],
      }),
    );
    await v.host.start();
  }, 60_000);

  afterAll(async () => {
    await v?.teardown();
    console.log(
      "mail-lookup-concurrency timings",
      Object.fromEntries(Object.entries(timings).map(([k, x]) => [k, Math.round(x * 100) / 100])),
    );
  });

  it("keeps the DB in WAL mode in its own setgid+sticky directory the readers' group may write", () => {
    const db = v.host.paths.lookupDb;
    const gid = lookupGroupId("postfix");
    expect(statSync(dirname(db))).toMatchObject({ uid: 0, gid });
    expect(mode(dirname(db))).toBe("3770");
    expect(statSync(db)).toMatchObject({ uid: 0, gid });
    expect(mode(db)).toBe("640");
    expect(mode(`${db}-shm`)).toBe("660");
    expect(mode(`${db}-wal`)).toBe("640");
    // WAL read/write versions in the header, read by another process: closing any descriptor of
    // the DB file in this process (readFileSync) would drop the POSIX locks of the agent's SQLite
    // connection living here, and the next sqlite3 to close would take itself for the last one and
    // delete -wal and -shm under the agent (its later writes then reach no reader).
    expect(spawnSync("head", ["-c", "20", db]).stdout.subarray(18, 20)).toEqual(Buffer.from([2, 2]));
  });

  it("answers postmap -q run as postfix and doveadm auth test while the agent holds the DB", async () => {
    const { stdout } = await postmapAsPostfix(`alice@${D}`);
    expect(stdout.trim()).toBe("1");
    const miss = await postmapAsPostfix(`nobody@${D}`).catch((e: { code?: number }) => e);
    expect((miss as { code?: number }).code).toBe(1); // not found, not an error (2)
    await exec("doveadm", ["-c", v.host.paths.dovecotConf, "auth", "test", `alice@${D}`, PASS]);
  });

  it("8 SMTP sessions keep getting 250 at RCPT and IMAP logins succeed while 300 upserts commit", async () => {
    const logStart = logText(v.host.paths.postfixLog).length;
    const dovecotLogStart = logText(v.host.paths.dovecotLog).length;
    let writing = true;
    const stats = { rcpt: 0, dropped: [] as string[], logins: 0, failedLogins: 0, asking: new Set<number>() };

    // Each session sits in one transaction and asks RCPT for existing mailboxes round-robin
    // (RSET now and then stays under smtpd_recipient_limit); any non-250 or error is a drop.
    const session = async (n: number): Promise<void> => {
      const s = await smtpConnect(v.smtp(25));
      try {
        const ok = async (line: string, code: number): Promise<void> => {
          const r = await s.cmd(line);
          if (r.code !== code) throw new Error(`${line} → ${r.text}`);
        };
        await ok(`EHLO ${HELO}`, 250);
        await ok("MAIL FROM:<sender@remote.test>", 250);
        for (let i = n; writing; i++) {
          await ok(`RCPT TO:<r${i % SEEDED}@${D}>`, 250);
          stats.rcpt++;
          stats.asking.add(n);
          if (i % 50 === 49) {
            await ok("RSET", 250);
            await ok("MAIL FROM:<sender@remote.test>", 250);
          }
        }
        await s.cmd("QUIT").catch(() => undefined);
      } catch (err) {
        stats.dropped.push(`session ${n}: ${String(err)}`);
      } finally {
        s.close();
      }
    };
    const logins = async (): Promise<void> => {
      while (writing) {
        if (await canLogin(v.imap(`alice@${D}`, PASS))) stats.logins++;
        else stats.failedLogins++;
      }
    };

    const clients = [
      ...Array.from({ length: SESSIONS }, (_, n) => session(n)),
      ...Array.from({ length: LOGIN_LOOPS }, logins),
    ];
    // Writes start once every session is open and asking and a login went through (polled, not slept).
    await waitUntil(
      "every SMTP session asking RCPT and one IMAP login",
      30_000,
      () => stats.asking.size === SESSIONS && stats.logins + stats.failedLogins > 0,
    );
    const commits: number[] = [];
    const t0 = performance.now();
    try {
      for (let i = 0; i < WRITES; i++) {
        const t = performance.now();
        await v.host.applyChanges([
          change({
            kind: { case: "upsertMailbox", value: { address: `w${i}@${D}`, passwordHash: hash, active: true } },
          }),
        ]);
        commits.push(performance.now() - t);
        await yieldLoop(); // let the clients' replies in between commits
      }
    } finally {
      writing = false;
    }
    timings.writeLoopMs = performance.now() - t0;
    await Promise.all(clients);
    commits.sort((a, b) => a - b);
    timings.commitP50Ms = commits[Math.floor(commits.length / 2)] ?? 0;
    timings.commitMaxMs = commits[commits.length - 1] ?? 0;
    Object.assign(timings, { rcpts: stats.rcpt, logins: stats.logins });

    const postfixLog = logText(v.host.paths.postfixLog).slice(logStart);
    const dovecotLog = logText(v.host.paths.dovecotLog).slice(dovecotLogStart);
    expect(postfixLog.split("\n").filter((l) => /dict_sqlite|database is locked/.test(l))).toEqual([]);
    expect(postfixLog.split("\n").filter((l) => /fatal:|panic:|warning: process .* exit status/.test(l))).toEqual([]);
    expect(
      dovecotLog.split("\n").filter((l) => /database is locked|sqlite/i.test(l) && /error|fatal/i.test(l)),
    ).toEqual([]);
    expect(stats.dropped).toEqual([]);
    expect(stats.failedLogins).toBe(0);
    // The load really overlapped the writes.
    expect(stats.rcpt).toBeGreaterThan(SESSIONS * 10);
    expect(stats.logins).toBeGreaterThan(0);
    // And the new rows are live for both readers.
    const { stdout } = await postmapAsPostfix(`w${WRITES - 1}@${D}`);
    expect(stdout.trim()).toBe("1");
    expect(await canLogin(v.imap(`w${WRITES - 1}@${D}`, PASS))).toBe(true);
  }, 120_000);

  it("drift() is cheap while only the agent writes and still reports a hand edit made with sqlite3", async () => {
    expect(v.host.drift()).toEqual([]);
    const t0 = performance.now();
    expect(v.host.drift()).toEqual([]);
    timings.driftMs = performance.now() - t0;
    const edit = (active: 0 | 1) =>
      exec("sqlite3", [v.host.paths.lookupDb, `UPDATE vmails SET active = ${active} WHERE user = 'alice@${D}'`]);
    await edit(0);
    try {
      expect(v.host.drift()).toEqual([v.host.paths.lookupDb]);
      expect(v.host.drift({ full: true })).toEqual([v.host.paths.lookupDb]);
      // The sqlite3 CLI ran as root in the directory: the readers' files must still work for them.
      expect(mode(`${v.host.paths.lookupDb}-shm`)).toBe("660");
      const { stdout } = await postmapAsPostfix(`r0@${D}`);
      expect(stdout.trim()).toBe("1");
    } finally {
      // Undone by hand too, so the other tests find alice as they expect, in any order.
      await edit(1);
    }
    expect(v.host.drift()).toEqual([]);
  });
});
