// A mail daemon killed with SIGKILL on a direct-mode vnode (no init system: the agent is the
// supervisor): health shows it failed with the reason, the agent starts it again by itself, health
// shows it active with a new pid, no worker of the killed master is left, and mail flows again
// (SMTP accepts, IMAP logs in, ClamAV refuses EICAR). Postfix, Dovecot, Rspamd and clamd. Limits
// only catch hangs; nothing here measures time.
import { readFileSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImapFlow } from "imapflow";
import { createVnodePaths } from "../../agent/paths.ts";
import { createRspamdPaths } from "../../agent/rspamd/paths.ts";
import { createClamavPaths } from "../../agent/clamav/paths.ts";
import { eicarMessage } from "../helpers/filter-messages.ts";
import { SHARED_HS_CACHE } from "../helpers/filter-root.ts";
import { buildMessage, sendMail } from "../helpers/mail-smtp.ts";
import { startMailFleet, until, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";
import { recordChaos } from "../chaos/report.ts";

const isRoot = process.getuid?.() === 0;
const PASSWORD = "Alice-secret-pass-1";
let fleet: MailFleet;
let vn: FleetVnode;

interface ServiceJson {
  name: string;
  state: string;
  detail: string | null;
  restarts: number;
  lastRestartAt: string | null;
  lastRestartReason: string | null;
}

const status = async (): Promise<{ services: ServiceJson[]; problems: string[] } | undefined> => {
  const r = await fleet.harness.cli(["mail:status", vn.name, "--json"]);
  return r.code === 0 ? (JSON.parse(r.out) as { services: ServiceJson[]; problems: string[] }) : undefined;
};

const service = async (name: string): Promise<ServiceJson | undefined> =>
  (await status())?.services.find((s) => s.name === name);

/** Live processes still in session `sid` (a master's workers: the masters are session leaders). */
async function sessionMembers(sid: number): Promise<number[]> {
  const out: number[] = [];
  for (const entry of await readdir("/proc")) {
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (stat !== "" && fields[0] !== "Z" && Number(fields[3]) === sid) out.push(Number(entry));
  }
  return out;
}

const pidOf = (pidFile: string): number => Number.parseInt(readFileSync(pidFile, "utf8").trim(), 10);

/** SIGKILL the daemon's master; wait for health to say failed, then active under a new pid. */
async function killAndWatch(
  name: string,
  pidFile: string,
): Promise<{ failed: ServiceJson; newPid: number; killedAt: number }> {
  await until(async () => ((await service(name))?.state === "active" ? true : undefined), 30_000, `${name} active`);
  const pid = pidOf(pidFile);
  expect(pid).toBeGreaterThan(1);
  process.kill(pid, "SIGKILL");
  const killedAt = Date.now();
  const failed = await until(
    async () => {
      const s = await service(name);
      return s?.state === "failed" ? s : undefined;
    },
    30_000,
    `${name} reported failed`,
  );
  const newPid = await until(
    async () => {
      const s = await service(name);
      if (s?.state !== "active") return undefined;
      const now = pidOf(pidFile);
      return now !== pid ? now : undefined;
    },
    60_000,
    `${name} active again under a new pid`,
  );
  // Back and active, the death stays visible: counted with its reason, and a problem in mail:status.
  const seen = await until(
    async () => {
      const st = await status();
      const s = st?.services.find((x) => x.name === name);
      return s && s.restarts > 0 ? { s, problems: st?.problems ?? [] } : undefined;
    },
    30_000,
    `${name}'s restart in health`,
  );
  expect(seen.s.restarts).toBe(1);
  expect(seen.s.lastRestartReason).toBe(`pid ${pid} is gone (killed or crashed)`);
  expect(seen.problems.join("\n")).toContain(`${name} died and was restarted (1x since the agent started`);
  // Nothing is left of the killed master: its workers were ended, not left to pile up.
  await until(
    async () => ((await sessionMembers(pid)).length === 0 ? true : undefined),
    30_000,
    `no workers left of ${name} master ${pid}`,
  );
  return { failed, newPid, killedAt };
}

/** The report row: the daemon came back by itself and mail works again (seconds observed, not asserted). */
function record(daemon: string, killedAt: number): void {
  recordChaos({
    fault: "daemon SIGKILL (direct mode)",
    where: `${daemon} master`,
    times: 1,
    config: "-",
    mailAccepted: true,
    converged: true,
    secondsToConverge: (Date.now() - killedAt) / 1000,
    lost: 0,
    duplicated: 0,
    note: "restarted by the agent's supervisor; seconds: kill to mail working again",
  });
}

/** Sends one message to alice over port 25 until it is accepted (SMTP back after a restart). */
function smtpAccepts(subject: string) {
  return until(
    async () => {
      const message = buildMessage({ from: "bob@sender.test", to: `alice@${vn.domain}`, subject, body: "back." });
      const sent = await sendMail({
        host: vn.ns.nsAddress,
        port: 25,
        ca: fleet.caPem,
        servername: vn.mailHostname,
        from: "bob@sender.test",
        to: [`alice@${vn.domain}`],
        data: message.data,
      });
      return sent.stage === "done" ? sent : undefined;
    },
    30_000,
    `SMTP to accept a message (${subject})`,
  );
}

describe.skipIf(!isRoot)("a mail daemon killed with SIGKILL comes back by itself (direct mode)", () => {
  beforeAll(async () => {
    // Rspamd and clamd too (Postfix's milter, offline settings, the suite's shared hyperscan
    // cache, ClamAV with the EICAR-only test signatures).
    fleet = await startMailFleet(["dk1"], "dkill", {
      agentArgs: ["--filter-offline", "--filter-cache", SHARED_HS_CACHE, "--clamav-test-signatures"],
    });
    vn = fleet.vnodes[0] as FleetVnode;
    const set = await fleet.harness.cli(["vnode", "set", vn.name, "--rspamd", "1", "--clamav", "1"]);
    expect(set.code, set.err).toBe(0);
    for (const name of ["rspamd", "clamd"])
      await until(
        async () => ((await service(name))?.state === "active" ? true : undefined),
        120_000,
        `${name} active`,
      );
    const added = await fleet.harness.cli(
      ["addvmail", vn.name, `alice@${vn.domain}`, "--password-stdin"],
      `${PASSWORD}\n`,
    );
    expect(added.code, added.err).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it("Postfix master: failed with the reason, restarted, and SMTP accepts mail again", async () => {
    const paths = createVnodePaths(vn.root);
    const { failed, killedAt } = await killAndWatch("postfix", paths.postfixPidFile);
    expect(failed.detail).toMatch(/pid \d+ is gone/);
    expect((await smtpAccepts("after the Postfix kill")).stage).toBe("done");
    record("postfix", killedAt);
  }, 180_000);

  it("Rspamd main: failed with the reason, restarted, its old workers gone, and mail passes the milter again", async () => {
    const { failed, killedAt } = await killAndWatch("rspamd", createRspamdPaths(vn.root).pidFile);
    expect(failed.detail).toMatch(/pid \d+ is gone/);
    // milter_default_action = tempfail: accepted means the new Rspamd answered.
    expect((await smtpAccepts("after the Rspamd kill")).stage).toBe("done");
    record("rspamd", killedAt);
  }, 180_000);

  it("clamd: failed with the reason, restarted, and EICAR is refused by ClamAV again", async () => {
    const { failed, killedAt } = await killAndWatch("clamd", createClamavPaths(vn.root).pidFile);
    expect(failed.detail).toMatch(/pid \d+ is gone/);
    // Refused with ClamAV's verdict: the new clamd answered Rspamd. While it starts a message is
    // deferred (the scanner fails closed) and the loop sends again; it is never accepted.
    let deferred = 0;
    let accepted = "";
    const refused = await until(
      async () => {
        const sent = await sendMail({
          host: vn.ns.nsAddress,
          port: 25,
          ca: fleet.caPem,
          servername: vn.mailHostname,
          from: "bob@sender.test",
          to: [`alice@${vn.domain}`],
          data: eicarMessage({ from: "bob@sender.test", to: `alice@${vn.domain}` }),
        });
        if (sent.reply.code < 400) accepted = sent.reply.text;
        if (sent.reply.code < 400) return sent.reply.text;
        if (sent.reply.code < 500) deferred++;
        return sent.reply.code === 554 ? sent.reply.text : undefined;
      },
      60_000,
      "EICAR refused after the clamd kill",
    );
    expect(accepted, "EICAR accepted while clamd restarted").toBe("");
    console.log(`clamd kill: ${deferred} EICAR attempts deferred before the new clamd answered`);
    expect(refused).toContain("clamav: virus found");
    record("clamd", killedAt);
  }, 180_000);

  it("Dovecot master: failed with the reason, restarted, and IMAP logs in again", async () => {
    const paths = createVnodePaths(vn.root);
    const { failed, killedAt } = await killAndWatch("dovecot", paths.dovecotPidFile);
    expect(failed.detail).toMatch(/pid \d+ is gone/);
    const loggedIn = await until(
      async () => {
        const client = new ImapFlow({
          host: vn.ns.nsAddress,
          port: 993,
          secure: true,
          auth: { user: `alice@${vn.domain}`, pass: PASSWORD },
          tls: { ca: fleet.caPem, servername: vn.mailHostname },
          logger: false,
        });
        client.on("error", () => undefined);
        try {
          await client.connect();
          const ok = client.authenticated !== false;
          await client.logout();
          return ok ? true : undefined;
        } catch {
          client.close();
          return undefined;
        }
      },
      30_000,
      "an IMAP login",
    );
    expect(loggedIn).toBe(true);
    record("dovecot", killedAt);
  }, 180_000);
});
