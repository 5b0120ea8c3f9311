// Agent SIGKILL inside an apply, at every step (issue 13). A real agent process in a network
// namespace with real Postfix and Dovecot is started with NETSERVA_AGENT_KILL_AT=<point>
// (agent/apply/kill-points.ts), a change is triggered (a mailbox added: lookup rows; the mail host
// name flipped: main.cf, dovecot.conf and the TLS files; both at once while the agent was down: a
// whole state), the agent dies at that point, and it is started again without the variable while
// its gRPC port is blackholed, so the controller cannot repair anything yet. Then: the managed
// files (sha256 of each) and the lookup rows (counts and a digest of their content) are exactly
// the old ones or exactly the new ones, together; SMTP accepts and IMAP logs in; and once the link
// is back the controller brings the vnode to its generation with no drift. Normal suite: one kill
// per named step; `scripts/chaos` (chaosFull): the full matrix, every nth occurrence of each step.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImapFlow } from "imapflow";
import { createVnodePaths, type VnodePaths } from "../../agent/paths.ts";
import { driftedFiles, readManifest, sha256 } from "../../agent/mail/manifest.ts";
import { MAP_NAMES } from "../../agent/postfix/render-maps.ts";
import { hashPassword } from "../../common/password/index.ts";
import { createMailServices } from "../../controller/mail/create-mail-services.ts";
import { createZoneListProvider } from "../../controller/dns/zone-list-provider.ts";
import { chaosFull, chaosLong, recordChaos } from "../chaos/report.ts";
import { startAgentProcess } from "../helpers/agent-process.ts";
import { SHARED_HS_CACHE } from "../helpers/filter-root.ts";
import { canLogin } from "../helpers/mail-imap.ts";
import { buildMessage, sendMail, smtpConnect } from "../helpers/mail-smtp.ts";
import {
  AGENT_PORT,
  METRICS_PORT,
  startMailFleet,
  until,
  type FleetVnode,
  type MailFleet,
} from "../helpers/mail-fleet.ts";

const isRoot = process.getuid?.() === 0;
/** Rspamd, when the full matrix turns it on: offline, with the suite's shared hyperscan cache. */
const FILTER_ARGS = ["--filter-offline", "--filter-cache", SHARED_HS_CACHE];
const PASSWORD = "Alice-secret-pass-1";
let fleet: MailFleet;
let vn: FleetVnode;
let paths: VnodePaths;
let hostnames: [string, string];
let added = 0;

type Kind = "rows" | "domain" | "config" | "whole";
type Side = "old" | "new";

interface Scenario {
  readonly point: string;
  readonly kind: Kind;
  /** NETSERVA_AGENT_FAIL_AT: forces a rollback for the restore/rollback points. */
  readonly failAt?: string;
  /** Where recovery must land: before the rows' commit, old; after it, new. */
  readonly side: Side;
}

interface Snapshot {
  readonly config: string;
  readonly files: Record<string, string>;
  readonly rows: string;
  readonly counts: { domains: number; mailboxes: number; aliases: number };
  readonly hostname: string;
}

/** Every managed file's sha256 (the manifest names them) and the lookup rows, read from disk. */
function snapshot(): Snapshot {
  const files: Record<string, string> = {};
  for (const path of Object.keys(readManifest(paths.manifest).files).sort()) {
    try {
      files[path] = sha256(readFileSync(path));
    } catch {
      files[path] = "missing";
    }
  }
  const db = new DatabaseSync(paths.lookupDb, { readOnly: true });
  try {
    const all = (sql: string): unknown[] => db.prepare(sql).all();
    const domains = all("SELECT domain, active FROM vhosts ORDER BY domain");
    const mailboxes = all("SELECT user, pass, active, quota, sieve, name FROM vmails ORDER BY user");
    const aliases = all("SELECT source, target, active FROM valias ORDER BY source");
    const mainCf = readFileSync(paths.postfixMainCf, "utf8");
    return {
      config: sha256(JSON.stringify(files)),
      files,
      rows: sha256(JSON.stringify([domains, mailboxes, aliases])),
      counts: { domains: domains.length, mailboxes: mailboxes.length, aliases: aliases.length },
      hostname: /^myhostname\s*=\s*(\S+)/m.exec(mainCf)?.[1] ?? "",
    };
  } finally {
    db.close();
  }
}

async function statusRow(): Promise<Record<string, unknown> | undefined> {
  const r = await fleet.harness.cli(["status", "--json"]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.out) as Array<Record<string, unknown>>).find((row) => row["vnode"] === vn.name);
}

/** Connected, at its generation, and its files are the ones its manifest lists. */
async function converged(what: string, limitMs = 180_000): Promise<void> {
  await until(
    async () => {
      const row = await statusRow();
      if (row?.["connected"] !== true || row["appliedGeneration"] !== row["generation"]) return undefined;
      return driftedFiles(readManifest(paths.manifest)).length === 0 ? true : undefined;
    },
    limitMs,
    what,
  );
}

// The agent's gRPC port blackholed inside the namespace (as network-cut.test.ts): the restarted
// agent is looked at before the controller can send it anything.
const CUT_RULES = [
  ["sport", String(AGENT_PORT)],
  ["dport", String(AGENT_PORT)],
] as const;
let cut = false;
async function cutLink(): Promise<void> {
  cut = true;
  for (const [key, port] of CUT_RULES) await vn.ns.run("ip", ["rule", "add", key, port, "blackhole"]);
}
async function restoreLink(): Promise<void> {
  if (!cut) return;
  for (const [key, port] of CUT_RULES)
    await vn.ns.run("ip", ["rule", "del", key, port, "blackhole"]).catch(() => undefined);
  cut = false;
}

async function startAgent(env: Record<string, string> = {}): Promise<void> {
  await vn.agent.stop();
  vn.agent = await startAgentProcess({
    ns: vn.ns,
    home: join(fleet.harness.dir, `agent-${vn.name}`),
    root: vn.root,
    port: AGENT_PORT,
    logDir: fleet.logDir,
    extraArgs: ["--metrics-listen", vn.metricsAddress, "--usage-interval", "1000", ...FILTER_ARGS],
    env,
    readyPort: METRICS_PORT,
  });
}

const logSize = (): number => {
  try {
    return statSync(vn.agent.logFile).size;
  } catch {
    return 0;
  }
};

/** The daemons run what is on disk: Postfix greets with the host name main.cf has, and both
 * present the certificate for it (STARTTLS and IMAPS verify it); then mail is accepted and alice
 * logs in. A daemon left on the other side of a rollback fails here. */
async function mailWorks(hostname: string): Promise<boolean> {
  const alice = `alice@${vn.domain}`;
  await until(
    async () => {
      const s = await smtpConnect({ host: vn.ns.nsAddress, port: 25, ca: fleet.caPem, servername: hostname });
      s.close();
      return s.greeting.text.startsWith(`220 ${hostname} `) ? true : undefined;
    },
    60_000,
    `Postfix to greet as ${hostname}`,
  );
  const message = buildMessage({ from: "bob@sender.test", to: alice, subject: "after a kill", body: "still here." });
  const sent = await until(
    async () => {
      const r = await sendMail({
        host: vn.ns.nsAddress,
        port: 25,
        ca: fleet.caPem,
        servername: hostname,
        startTls: true,
        from: "bob@sender.test",
        to: [alice],
        data: message.data,
      });
      return r.stage === "done" ? r : undefined;
    },
    60_000,
    "SMTP to accept a message",
  );
  const login = await until(
    async () => {
      const client = new ImapFlow({
        host: vn.ns.nsAddress,
        port: 993,
        secure: true,
        auth: { user: alice, pass: PASSWORD },
        tls: { ca: fleet.caPem, servername: hostname },
        logger: false,
      });
      client.on("error", () => undefined);
      return (await canLogin(client)) ? true : undefined;
    },
    60_000,
    "alice to log in over IMAP",
  );
  return sent.stage === "done" && login;
}

/** The change of one scenario; for a whole state it is made while the agent is down. */
async function trigger(kind: Kind): Promise<void> {
  const flip = async (): Promise<void> => {
    const current = snapshot().hostname;
    const next = current === hostnames[0] ? hostnames[1] : hostnames[0];
    const r = await fleet.harness.cli(["vnode", "set", vn.name, "--mail-hostname", next]);
    expect(r.code, r.err).toBe(0);
  };
  const addMailbox = async (): Promise<void> => {
    added += 1;
    const r = await fleet.harness.cli(
      ["addvmail", vn.name, `kill${added}@${vn.domain}`, "--password-stdin"],
      "Kill-test-pass-1\n",
    );
    expect(r.code, r.err).toBe(0);
  };
  if (kind === "domain") {
    added += 1;
    const r = await fleet.harness.cli(["addvmaildomain", vn.name, `kill${added}.test`, "--skip-dns-check"]);
    expect(r.code, r.err).toBe(0);
  }
  if (kind === "config") await flip();
  if (kind === "rows") await addMailbox();
  if (kind === "whole") {
    await addMailbox();
    await flip();
  }
}

/** What an interrupted apply may leave and start-up recovery must remove: the staging mirror,
 * files written aside next to the managed ones, the journal. */
function leftovers(): string[] {
  const dirs = new Set(Object.keys(readManifest(paths.manifest).files).map((f) => dirname(f)));
  const aside = [...dirs].flatMap((d) =>
    readdirSync(d)
      .filter((f) => f.includes(".ns-"))
      .map((f) => join(d, f)),
  );
  return [paths.stagingDir, join(paths.backupDir, "pending-apply.json")].filter((p) => existsSync(p)).concat(aside);
}

/** `postfix reload` lines in Postfix's own log. */
const postfixReloads = (): number => {
  try {
    return readFileSync(paths.postfixLog, "utf8")
      .split("\n")
      .filter((l) => / reload -- version /.test(l)).length;
  } catch {
    return 0;
  }
};

const same = (a: Snapshot, b: Snapshot): boolean => a.config === b.config && a.rows === b.rows;

async function runScenario(s: Scenario, limitMs = 180_000, ordinal = ""): Promise<void> {
  await converged("converged before the kill", limitMs);
  const before = snapshot();
  const env: Record<string, string> = { NETSERVA_AGENT_KILL_AT: s.point };
  if (s.failAt) env["NETSERVA_AGENT_FAIL_AT"] = s.failAt;
  const logFrom = logSize();
  if (s.kind === "whole") {
    // Both changes are stored while the agent is down; the reconciler sends them as one state.
    await vn.agent.stop();
    await trigger(s.kind);
    await startAgent(env);
  } else {
    await startAgent(env);
  }
  const died = new Promise<string | null>((resolve) => {
    if (vn.agent.child.exitCode !== null || vn.agent.child.signalCode !== null) resolve(vn.agent.child.signalCode);
    vn.agent.child.once("exit", (_code, signal) => resolve(signal));
  });
  const pushed = s.kind === "whole" ? Promise.resolve() : trigger(s.kind);
  const signal = await Promise.race([
    died,
    new Promise<string>((_, reject) => setTimeout(() => reject(new Error(`agent not killed at ${s.point}`)), limitMs)),
  ]);
  await pushed;
  const diedAt = Date.now();
  expect(signal).toBe("SIGKILL");
  expect(readFileSync(vn.agent.logFile, "utf8").slice(logFrom)).toContain(`kill point ${s.point}`);

  await cutLink();
  const reloadsBefore = postfixReloads();
  await startAgent();
  if (s.kind === "domain" && (s.point === "lookup:after-commit" || s.point.startsWith("reload:")))
    // A new domain is live in Postfix only after a reload (an smtpd that looked it up before
    // keeps answering 554): the restarted agent owes the one the kill took away.
    await until(
      async () => (postfixReloads() > reloadsBefore ? true : undefined),
      60_000,
      "Postfix reloaded for the domain committed before the kill",
    );
  const recovered = snapshot();
  expect(leftovers()).toEqual([]);
  const mailAccepted = await mailWorks(recovered.hostname);
  await restoreLink();
  await converged(`converged after the kill at ${s.point}`, limitMs);
  const seconds = (Date.now() - diedAt) / 1000;
  const after = snapshot();
  // The trigger changed something, and recovery landed on exactly one side of it.
  expect(same(before, after)).toBe(false);
  const side: Side | "mixed" = same(recovered, before) ? "old" : same(recovered, after) ? "new" : "mixed";
  recordChaos({
    fault: "agent SIGKILL",
    where: `${s.point} (${s.kind}${s.failAt ? `, ${s.failAt} failing` : ""})`,
    times: 1,
    config: side,
    mailAccepted,
    converged: true,
    secondsToConverge: Math.round(seconds * 10) / 10,
    lost: 0,
    duplicated: 0,
    note: `${ordinal}mailboxes ${before.counts.mailboxes}→${recovered.counts.mailboxes}→${after.counts.mailboxes}`,
  });
  if (side === "mixed") {
    const differ = Object.keys(recovered.files).filter(
      (f) => recovered.files[f] !== before.files[f] && recovered.files[f] !== after.files[f],
    );
    throw new Error(
      `mixed state after a kill at ${s.point}: rows ${recovered.rows === before.rows ? "old" : recovered.rows === after.rows ? "new" : "neither"}, config ${recovered.config === before.config ? "old" : recovered.config === after.config ? "new" : `neither (${differ.join(", ")})`}`,
    );
  }
  expect(side).toBe(s.side);
  expect(mailAccepted).toBe(true);
}

/** One kill per named step (the normal suite). */
const NAMED: Scenario[] = [
  { point: "stage#2", kind: "config", side: "old" },
  { point: "check:postfix", kind: "config", side: "old" },
  { point: "check:doveconf", kind: "config", side: "old" },
  { point: "rename#2", kind: "config", side: "old" },
  { point: "reload:postfix", kind: "config", side: "old" },
  { point: "verify", kind: "config", side: "old" },
  { point: "restore#2", kind: "config", failAt: "verify", side: "old" },
  { point: "rollback:postfix", kind: "config", failAt: "verify", side: "old" },
  { point: "lookup:before-commit", kind: "rows", side: "old" },
  { point: "lookup:before-commit", kind: "whole", side: "old" },
  { point: "lookup:after-commit", kind: "domain", side: "new" },
  { point: "lookup:after-commit", kind: "whole", side: "new" },
  { point: "bookkeeping", kind: "config", side: "new" },
  { point: "state-file:before", kind: "rows", side: "new" },
];

/** The full matrix: every step at each of its occurrences, for each change that reaches it. */
function fullMatrix(counts: { staged: number; changed: number; maps: number }): Scenario[] {
  const out: Scenario[] = [];
  const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);
  for (const kind of ["config", "whole"] as const) {
    for (const n of upTo(counts.staged)) out.push({ point: `stage#${n}`, kind, side: "old" });
    for (const program of ["postfix", "postconf", "doveconf", "sievec"])
      out.push({ point: `check:${program}`, kind, side: "old" });
    for (const n of upTo(counts.maps)) out.push({ point: `check:postmap#${n}`, kind, side: "old" });
    out.push({ point: "journal", kind, side: "old" });
    for (const n of upTo(counts.changed)) {
      out.push({ point: `aside#${n}`, kind, side: "old" });
      out.push({ point: `rename#${n}`, kind, side: "old" });
      out.push({ point: `restore#${n}`, kind, failAt: "verify", side: "old" });
    }
    for (const point of ["reload", "reload:postfix", "reload:doveadm", "verify", "commit", "lookup:before-commit"])
      out.push({ point, kind, side: "old" });
    for (const point of ["rollback:postfix", "rollback:doveadm"])
      out.push({ point, kind, failAt: "verify", side: "old" });
    for (const point of ["lookup:after-commit", "bookkeeping", "state-file:before", "state-file:after"])
      out.push({ point, kind, side: "new" });
  }
  for (const kind of ["rows", "domain", "rows"] as const) {
    out.push({ point: "lookup:before-commit", kind, side: "old" });
    for (const point of ["lookup:after-commit", "state-file:before", "state-file:after"])
      out.push({ point, kind, side: "new" });
  }
  out.push({ point: "reload:postfix", kind: "domain", side: "new" });
  return out;
}

/** `scripts/chaos --from N`: the full matrix resumes at its N-th kill (after a run that stopped
 * there); the kills before it are not repeated. */
const FROM = Number(process.env["NETSERVA_CHAOS_FROM"] ?? "1");

/** chaosLong: whole states of 100,000 mailboxes, killed on both sides of their rows' commit. */
const BULK = 100_000;
const LONG: Scenario[] = [
  { point: "rename#1", kind: "whole", side: "old" },
  { point: "lookup:before-commit", kind: "whole", side: "old" },
  { point: "lookup:after-commit", kind: "whole", side: "new" },
  { point: "state-file:before", kind: "whole", side: "new" },
];

describe.skipIf(!isRoot)("agent SIGKILL inside an apply: all old or all new, then converged", () => {
  beforeAll(async () => {
    fleet = await startMailFleet(["fk1"], "fkill", { agentArgs: FILTER_ARGS });
    vn = fleet.vnodes[0] as FleetVnode;
    paths = createVnodePaths(vn.root);
    hostnames = [vn.mailHostname, `mail2.${vn.domain}`];
    const r = await fleet.harness.cli(["addvmail", vn.name, `alice@${vn.domain}`, "--password-stdin"], `${PASSWORD}\n`);
    expect(r.code, r.err).toBe(0);
    await converged("alice applied");
  }, 300_000);

  afterAll(async () => {
    if (vn) await restoreLink();
    await fleet?.close();
  });

  it.skipIf(chaosFull)(
    "one kill at each named step",
    async () => {
      for (const s of NAMED) await runScenario(s);
    },
    NAMED.length * 240_000,
  );

  it.runIf(chaosFull)(
    "the full matrix: every occurrence of every step, for rows, config and whole-state changes",
    async () => {
      // A plain flip first: how many files are staged and how many a flip changes.
      await converged("converged before the probe");
      const before = snapshot();
      await trigger("config");
      await converged("the probe flip applied");
      const after = snapshot();
      const staged = Object.keys(after.files).length;
      const changed = Object.keys(after.files).filter((f) => after.files[f] !== before.files[f]).length;
      const matrix = fullMatrix({ staged, changed, maps: MAP_NAMES.length });
      expect(matrix.length).toBeGreaterThanOrEqual(100);
      expect(Number.isInteger(FROM) && FROM >= 1 && FROM <= matrix.length, `NETSERVA_CHAOS_FROM=${FROM}`).toBe(true);
      for (const [i, s] of matrix.entries())
        if (i + 1 >= FROM) await runScenario(s, 180_000, `kill ${i + 1}/${matrix.length}; `);
      // Last, with Rspamd on: its checker runs in every apply, and its files are in the set.
      const on = await fleet.harness.cli(["vnode", "set", vn.name, "--rspamd", "1"]);
      expect(on.code, on.err).toBe(0);
      await converged("rspamd turned on", 600_000);
      for (const kind of ["config", "whole"] as const) {
        await runScenario({ point: "check:rspamadm", kind, side: "old" }, 600_000);
        await runScenario({ point: "rename#1", kind, side: "old" }, 600_000);
        await runScenario({ point: "lookup:after-commit", kind, side: "new" }, 600_000);
      }
    },
    4 * 3600_000,
  );

  it.runIf(chaosLong)(
    `whole states of ${BULK} mailboxes killed before and after their rows commit`,
    async () => {
      // Stored through the service layer in batches (one precomputed hash), then sent by the
      // reconciler as one whole state; each scenario then sends all of them again.
      const services = createMailServices({
        em: fleet.harness.db.em(),
        actor: "chaos",
        dns: createZoneListProvider({ zones: [vn.domain] }),
      });
      // 100,000 default quotas promise more than any test machine's disk: the domain overcommits
      // (without it every later addvmail is refused for capacity).
      const over = await fleet.harness.cli(["chvmaildomain", vn.name, vn.domain, "--overcommit"]);
      expect(over.code, over.err).toBe(0);
      const passwordHash = await hashPassword("Bulk-mailbox-pass-1");
      for (let i = 0; i < BULK; i += 5000) {
        const mailboxes = Array.from({ length: 5000 }, (_, k) => ({
          address: `bulk${i + k}@${vn.domain}`,
          passwordHash,
        }));
        const r = await services.mailboxes.addMany({ vnode: vn.name, mailboxes });
        expect(r.value.refused).toEqual([]);
      }
      await converged(`${BULK} mailboxes applied`, 1800_000);
      expect(snapshot().counts.mailboxes).toBeGreaterThan(BULK);
      for (const s of LONG) await runScenario(s, 1800_000);
    },
    4 * 3600_000,
  );
});
