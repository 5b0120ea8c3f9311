// Benchmark: inbound mail throughput of three stacks side by side in one run, each in its own
// network namespace, with the same messages and the same durability (Postfix's queue fsync,
// Dovecot's default mail_fsync):
//   bare      Debian's default Postfix + Dovecot, the minimum to deliver (what the hardware does);
//   hand      a hand-written Postfix + Dovecot with every guarantee the rendered one gives
//             (scripts/bench-mail.d/hand/), on the same SQLite rows;
//   rendered  the agent's own render and apply (createMailHost).
// The stacks take turns, round after round, so whatever else the machine does falls on all of
// them alike; ratios are per round. Per-daemon CPU per message from /proc, the load generator's
// CPU beside it. Then submission on 587 (STARTTLS + AUTH through nodemailer) to hand and
// rendered (and, with --rspamd, to both Rspamd stacks), and outbound relay: submission on 587 of
// mail for a remote domain that each stack (bare, hand, rendered) relays by MX to Postfix's
// smtp-sink in another namespace. Run by scripts/bench-mail; loopback and its own namespaces only.
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs, promisify } from "node:util";
import { blast, submit, type LoadOptions, type LoadResult } from "./bench-mail.d/load.ts";
import {
  DOMAIN,
  dkimSignedCount,
  FULL_USER,
  LOAD_USER,
  PASSWORD,
  startBare,
  startHand,
  startRendered,
  milterLines,
  type HandVariant,
  type Stack,
} from "./bench-mail.d/stacks.ts";
import { buildMessage, sendMail, type SmtpTarget } from "../test/helpers/mail-smtp.ts";
import { MAIL_HOSTNAME } from "../test/helpers/mail-vnode.ts";
import { createCleanups } from "./bench-mail.d/cleanups.ts";
import { imapMix, imapUsers, prepareImap, type ImapMixOptions, type ImapMixResult } from "./bench-mail.d/imap.ts";
import { REMOTE_USER, startRelayNetwork, startSink } from "./bench-mail.d/relay.ts";
import { removeStaleNetnsEtc } from "../test/helpers/intervnode-net.ts";

const exec = promisify(execFile);

const { values: opts } = parseArgs({
  options: {
    messages: { type: "string", default: "1000" },
    sessions: { type: "string", default: "8" },
    size: { type: "string", default: "1200" },
    rounds: { type: "string", default: "3" },
    mailboxes: { type: "string", default: "100" },
    stages: { type: "boolean", default: false },
    "no-submission": { type: "boolean", default: false },
    "no-relay": { type: "boolean", default: false },
    "no-inbound": { type: "boolean", default: false },
    json: { type: "string" },
    "imap-clients": { type: "string", default: "16" },
    "imap-sessions": { type: "string", default: "400" },
    "no-imap": { type: "boolean", default: false },
    only: { type: "string" },
    rspamd: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});
const count = (name: string, v: string | undefined, min: number, max: number): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer ${min}..${max}`);
  return n;
};
const LOAD: LoadOptions = {
  messages: count("messages", opts.messages, 10, 100_000),
  sessions: count("sessions", opts.sessions, 1, 200),
  size: count("size", opts.size, 0, 10_000_000),
};
const ROUNDS = count("rounds", opts.rounds, 1, 20);
const MAILBOXES = count("mailboxes", opts.mailboxes, 0, 100_000);
const IMAP: ImapMixOptions = {
  clients: count("imap-clients", opts["imap-clients"], 1, 200),
  sessions: count("imap-sessions", opts["imap-sessions"], 1, 100_000),
};
if (!opts["no-imap"] && IMAP.clients > MAILBOXES)
  throw new Error(`--imap-clients (${IMAP.clients}) needs as many --mailboxes (${MAILBOXES}): each client has its own`);

const log = (line: string): void => void process.stderr.write(`bench-mail: ${line}\n`);

const { onCleanup, cleanup } = createCleanups(log);

/**
 * Stage by stage: the hand-written stack with one thing taken out (or added) at a time. A later
 * assignment in main.cf wins; a later protocol block in dovecot.conf overrides the earlier one.
 */
const STAGES: Array<HandVariant & { what: string }> = [
  {
    name: "no-policy",
    what: "hand without the quota-status policy at RCPT",
    mainCf: ["smtpd_recipient_restrictions ="],
  },
  {
    name: "no-sieve",
    what: "hand without Sieve at delivery",
    dovecot: ["protocol lmtp {", "  mail_plugins = quota", "}"],
  },
  {
    name: "no-quota",
    what: "hand without quota (no policy, no plugin)",
    mainCf: ["smtpd_recipient_restrictions ="],
    dovecot: ["mail_plugins =", "protocol lmtp {", "  mail_plugins = sieve", "}"],
  },
  { name: "lmtp-rcpt-quota", what: "hand plus lmtp_rcpt_check_quota = yes", dovecot: ["lmtp_rcpt_check_quota = yes"] },
  {
    name: "auth-cache",
    what: "hand plus Dovecot's auth cache (no negative caching)",
    dovecot: ["auth_cache_size = 10M", "auth_cache_negative_ttl = 0"],
  },
  {
    name: "no-dedup",
    what: "hand without the before-script's duplicate check (Sieve duplicate on our Received line)",
    sieveBefore: "before-nodedup.sieve",
  },
  {
    name: "maildir-quota",
    what: "hand with Maildir++ quota (maildirsize) instead of count",
    dovecot: ["plugin {", "  quota = maildir:User quota", "  quota_vsizes = no", "}"],
  },
];

// --- the guarantees, checked on every stack (the bare one is expected to fail most) ----------

interface Check {
  name: string;
  want: string;
  run(s: Stack, t: SmtpTarget): Promise<string>;
}

const msg = (to: string): string =>
  buildMessage({ from: "someone@sender.test", to, subject: "bench-mail check", body: "check" }).data;
const outcome = (o: { stage: string; reply: { code: number } }): string =>
  o.stage === "done" ? "accepted" : `${o.reply.code} at ${o.stage.toUpperCase()}`;

const CHECKS: Check[] = [
  {
    name: "unknown user on :25",
    want: "550 at RCPT",
    run: async (_s, t) =>
      outcome(await sendMail({ ...t, from: "a@sender.test", to: [`nobody@${DOMAIN}`], data: msg(`nobody@${DOMAIN}`) })),
  },
  {
    name: "over quota on :25 (SIZE=2000, quota 1 byte)",
    want: "552 at RCPT",
    run: async (s, t) => {
      const to = s.name === "bare" ? s.to : FULL_USER;
      return outcome(await sendMail({ ...t, from: "a@sender.test", to: [to], data: msg(to), size: 2000 }));
    },
  },
  {
    name: "relay to another domain on :25",
    want: "554 at RCPT",
    run: async (_s, t) =>
      outcome(await sendMail({ ...t, from: "a@sender.test", to: ["x@elsewhere.test"], data: msg("x@elsewhere.test") })),
  },
  {
    name: "STARTTLS offered on :25",
    want: "yes",
    run: async (_s, t) => {
      const r = await sendMail({ ...t, from: "a@sender.test", to: [LOAD_USER], data: msg(LOAD_USER), startTls: true });
      return r.stage === "starttls" ? "no" : "yes";
    },
  },
  {
    name: "587 AUTH as load@, MAIL FROM another mailbox",
    want: "553 at RCPT",
    run: async (s, t) => {
      const r = await sendMail({
        ...t,
        port: 587,
        startTls: true,
        auth: { user: s.name === "bare" ? s.to : LOAD_USER, pass: PASSWORD },
        from: FULL_USER,
        to: ["x@elsewhere.test"],
        data: msg("x@elsewhere.test"),
      }).catch((e: Error) => ({ stage: "connect", reply: { code: 0 }, e }));
      return r.stage === "connect" ? "no submission" : outcome(r);
    },
  },
];

async function checkGuarantees(stacks: Stack[], ca: string): Promise<string[][]> {
  const rows: string[][] = [];
  for (const c of CHECKS) {
    const row = [c.name, c.want];
    for (const s of stacks) {
      const t: SmtpTarget = { host: s.ns.nsAddress, port: 25, ca, servername: MAIL_HOSTNAME };
      row.push(await c.run(s, t).catch((e: Error) => `error: ${e.message.slice(0, 40)}`));
    }
    rows.push(row);
  }
  return rows;
}

// --- report helpers ------------------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? ((s[(s.length - 1) >> 1] ?? 0) + (s[s.length >> 1] ?? 0)) / 2 : Number.NaN;
}
const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : "-");
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : "-");

function table(header: string[], rows: string[][], leftCols = 1): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i < leftCols || i === cells.length - 1 ? c.padEnd(w[i] ?? 0) : c.padStart(w[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), w.map((n) => "-".repeat(n)).join("  "), ...rows.map(line)].join("\n");
}

const rate = (r: LoadResult): number => (r.delivered * 1000) / r.totalMs;
const sessionRate = (r: ImapMixResult): number => (r.sessions * 1000) / r.totalMs;

function printImap(runs: Map<string, ImapMixResult[]>): void {
  const rows = [...runs].map(([name, rs]) => {
    const per = (f: (r: ImapMixResult) => number): number => median(rs.map(f));
    return [
      name,
      String(rs.reduce((a, r) => a + r.sessions, 0)),
      rs.map((r) => f1(sessionRate(r))).join(" "),
      f1(per(sessionRate)),
      f1(per((r) => median([...r.sessionMs]))),
      f2(per((r) => r.cpu.totalMs / r.totalMs)),
      f2(per((r) => r.cpu.totalMs / r.sessions)),
      f2(per((r) => r.clientCpuMs / r.totalMs)),
    ];
  });
  console.log(
    table(
      [
        "IMAP 993",
        "sessions",
        "sessions/s per round",
        "median sessions/s",
        "session p50 ms",
        "stack cores",
        "stack CPU ms/session",
        "client cores",
      ],
      rows,
    ),
  );
  for (const [name, rs] of runs) for (const r of rs) if (r.failures) console.log(`${name} IMAP: ${r.failures}`);
  const [h = [], rd = []] = [runs.get("hand"), runs.get("rendered")];
  if (h.length && rd.length) {
    const cpu = (rs: ImapMixResult[]): number => median(rs.map((r) => r.cpu.totalMs / r.sessions));
    console.log(
      `rendered / hand IMAP sessions/s: ${f2(median(rd.map(sessionRate)) / median(h.map(sessionRate)))}x (per round ${rd.map((x, i) => f2(sessionRate(x) / sessionRate(h[i] ?? x))).join(" ")}); per CPU-second ${f2(cpu(h) / cpu(rd))}x   target >= 0.9x`,
    );
  }
  const daemons = new Set<string>();
  for (const rs of runs.values()) for (const r of rs) for (const k of r.cpu.byDaemon.keys()) daemons.add(k);
  const perSession = (rs: ImapMixResult[], d: string): number =>
    median(rs.map((r) => (d === "(unattributed)" ? r.cpu.unattributedMs : (r.cpu.byDaemon.get(d) ?? 0)) / r.sessions));
  const dRows = [...daemons, "(unattributed)"]
    .map((d) => ({ d, xs: [...runs.values()].map((rs) => perSession(rs, d)) }))
    .filter(({ xs }) => xs.some((x) => x >= 0.05))
    .sort((a, b) => b.xs.reduce((x, y) => x + y, 0) - a.xs.reduce((x, y) => x + y, 0))
    .map(({ d, xs }) => [d, ...xs.map(f2)]);
  console.log(table(["CPU ms per IMAP session", ...runs.keys()], dRows));
  console.log(
    `(a session: TLS connect on 993, LOGIN, SELECT INBOX, FETCH envelope+flags+structure of the newest 10, APPEND ~1 kB to a folder, LOGOUT; ${IMAP.clients} clients each on its own mailbox, ImapFlow from this process)`,
  );
  console.log("");
}

/** Per daemon CPU per message, medians over the rounds, one column per stack. */
function printDaemons(title: string, runs: Map<string, LoadResult[]>): void {
  const daemons = new Set<string>();
  for (const rs of runs.values()) for (const r of rs) for (const k of r.cpu.byDaemon.keys()) daemons.add(k);
  const perMsg = (rs: LoadResult[], d: string): number =>
    median(rs.map((r) => (d === "(unattributed)" ? r.cpu.unattributedMs : (r.cpu.byDaemon.get(d) ?? 0)) / r.delivered));
  const dRows = [...daemons, "(unattributed)"]
    .map((d) => ({ d, xs: [...runs.values()].map((rs) => perMsg(rs, d)) }))
    .filter(({ xs }) => xs.some((x) => x >= 0.005))
    .sort((a, b) => b.xs.reduce((x, y) => x + y, 0) - a.xs.reduce((x, y) => x + y, 0))
    .map(({ d, xs }) => [d, ...xs.map(f2)]);
  console.log(table([title, ...runs.keys()], dRows));
  console.log("");
}

async function mailFsync(s: Stack): Promise<string> {
  const { stdout } = await exec("doveconf", ["-c", s.dovecotConf, "-h", "mail_fsync"]).catch(() => ({ stdout: "?" }));
  return stdout.trim();
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: it creates network namespaces and runs Postfix/Dovecot");
  const started = performance.now();
  const load0 = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  await removeStaleNetnsEtc(); // resolver files of a run that was SIGKILLed
  const workDir = mkdtempSync(join(tmpdir(), "nsm-bench-mail-"));
  chmodSync(workDir, 0o755); // postfix and vmail traverse it
  onCleanup("work dir", () => (opts.keep ? log(`kept ${workDir}`) : rmSync(workDir, { recursive: true, force: true })));

  log(`rendered stack (the agent's render and apply, ${MAILBOXES + 2} mailboxes) …`);
  const { stack: rendered, vnode } = await startRendered(MAILBOXES, onCleanup, opts.keep ? workDir : undefined);
  log("hand-written stack on a copy of its sysadm.db, bare Debian stack …");
  const hand = await startHand(workDir, vnode, { name: "hand" }, onCleanup);
  const bare = await startBare(workDir, onCleanup, vnode.tls);
  const only = opts.only?.split(",");
  const wanted = (name: string): boolean =>
    only ? only.includes(name) : opts.stages || !STAGES.some((v) => v.name === name);
  const variants: Stack[] = [];
  for (const v of STAGES) {
    if (!wanted(v.name)) continue;
    const t0 = performance.now();
    variants.push(await startHand(workDir, vnode, v, onCleanup));
    log(`  ${v.name} (${v.what}) started in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  // --rspamd: a second rendered vnode with Rspamd on (offline, as bench-apply runs it), and the
  // hand stack pointed at that same Rspamd instance with the milter lines the agent renders.
  if (opts.rspamd) {
    log("rendered stack with Rspamd, and the hand stack on the same Rspamd …");
    const withRspamd = await startRendered(MAILBOXES, onCleanup, opts.keep ? workDir : undefined, { rspamd: true });
    variants.push(withRspamd.stack);
    const handRspamd = await startHand(
      workDir,
      withRspamd.vnode,
      {
        name: "hand+rspamd",
        mainCf: milterLines(withRspamd.milterAddress ?? ""),
        // Rspamd lives in the rendered vnode's namespace: its work during hand+rspamd's runs
        // is hand+rspamd's.
        sharedCpu: { netns: withRspamd.stack.ns.name, comm: /^rspamd/ },
      },
      onCleanup,
    );
    const rspamdLog = withRspamd.stack.rspamdLog;
    variants.push(rspamdLog === undefined ? handRspamd : { ...handRspamd, rspamdLog });
  }
  const stacks = [bare, hand, rendered, ...variants].filter((s) => wanted(s.name));
  const RELAYERS = ["bare", "hand", "rendered", "hand+rspamd", "rendered+rspamd"];
  const relaying = opts["no-relay"] ? [] : stacks.filter((s) => RELAYERS.includes(s.name));
  const sink = await startSink(onCleanup);
  log(`PowerDNS for every namespace, MX for the remote domain → smtp-sink in ${sink.name} …`);
  await startRelayNetwork(
    [bare, hand, rendered, ...variants].map((s) => s.ns),
    relaying.map((s) => s.ns),
    sink,
    onCleanup,
  );

  log("checking the guarantees on each stack …");
  const checks = await checkGuarantees([bare, hand, rendered], vnode.tls.caPem);
  // Warm-up: first deliveries make the maildir, the indexes and the Sieve binaries.
  for (const s of stacks) await blast(s, { ...LOAD, messages: 20 });

  // --no-inbound: only the 587 / relay / IMAP rounds (the warm-up above still makes the maildirs).
  const results = new Map<string, LoadResult[]>(opts["no-inbound"] ? [] : stacks.map((s) => [s.name, []]));
  const tls = { ca: vnode.tls.caPem, servername: MAIL_HOSTNAME };
  const SUBMITTERS = ["hand", "rendered", "hand+rspamd", "rendered+rspamd"];
  const submitting = opts["no-submission"] ? [] : stacks.filter((s) => SUBMITTERS.includes(s.name));
  const submitted = new Map<string, LoadResult[]>(submitting.map((s) => [s.name, []]));
  for (const s of submitting) {
    const warm = await submit(s, { ...LOAD, messages: 20 }, MAIL_HOSTNAME);
    if (warm.delivered !== 20)
      throw new Error(
        `${s.name}: 587 delivered ${warm.delivered}/20 in the warm-up${warm.failures ? `: ${warm.failures}` : ""}`,
      );
  }
  const relayTo = { to: REMOTE_USER, sink: sink.name };
  const relayed = new Map<string, LoadResult[]>(relaying.map((s) => [s.name, []]));
  const firstLog = relaying.find((s) => s.rspamdLog !== undefined)?.rspamdLog;
  let signedBefore = firstLog === undefined ? 0 : dkimSignedCount(firstLog);
  for (const s of relaying) {
    const warm = await submit(s, { ...LOAD, messages: 20 }, MAIL_HOSTNAME, relayTo);
    if (warm.delivered !== 20)
      throw new Error(
        `${s.name}: relayed ${warm.delivered}/20 in the warm-up${warm.failures ? `: ${warm.failures}` : ""}; see ${s.postfixLog}`,
      );
    // Through Rspamd, relayed mail leaves DKIM-signed (smtp-sink keeps nothing: Rspamd's log says).
    if (s.rspamdLog !== undefined) {
      const signed = dkimSignedCount(s.rspamdLog) - signedBefore;
      signedBefore += signed;
      if (signed < 20)
        throw new Error(`${s.name}: Rspamd DKIM-signed ${signed} of the 20 warm-up relays; see ${s.rspamdLog}`);
      log(`  ${s.name}: the 20 warm-up relays left DKIM-signed (d=${DOMAIN}, s=bench)`);
    }
  }
  const imapping = opts["no-imap"] ? [] : stacks.filter((s) => s.name === "hand" || s.name === "rendered");
  const imapRuns = new Map<string, ImapMixResult[]>(imapping.map((s) => [s.name, []]));
  const users = imapUsers(IMAP.clients);
  for (const s of imapping) {
    await prepareImap(s, users, tls);
    await imapMix(s, users, { clients: IMAP.clients, sessions: IMAP.clients }, tls); // warm-up
  }
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate who goes first, so no stack always meets the machine in the same state.
    const order = stacks.map((_, i) => stacks[(i + r) % stacks.length] as Stack);
    for (const s of order.filter((x) => results.has(x.name))) {
      log(`round ${r + 1}/${ROUNDS}: ${LOAD.messages} messages, ${LOAD.sessions} sessions → ${s.name} …`);
      const res = await blast(s, LOAD);
      results.get(s.name)?.push(res);
      log(
        `  ${s.name}: ${f1(rate(res))} msg/s, ${res.delivered}/${res.sent} delivered, stack CPU ${f1(res.cpu.totalMs / res.delivered)} ms/msg`,
      );
    }
    // Submission: the stacks that have it (bare's master.cf has no 587), same rotation.
    for (const s of submitting) {
      log(`round ${r + 1}/${ROUNDS}: ${LOAD.messages} messages over 587 (STARTTLS, AUTH) → ${s.name} …`);
      const res = await submit(s, LOAD, MAIL_HOSTNAME);
      submitted.get(s.name)?.push(res);
      log(
        `  ${s.name} 587: ${f1(rate(res))} msg/s, ${res.delivered}/${res.sent} delivered${res.failures ? `; ${res.failures}` : ""}`,
      );
    }
    submitting.reverse();
    // Outbound relay: submitted on 587 for the remote domain, relayed by MX to smtp-sink.
    for (const s of relaying) {
      log(`round ${r + 1}/${ROUNDS}: ${LOAD.messages} messages over 587 for ${REMOTE_USER}, relayed → ${s.name} …`);
      const res = await submit(s, LOAD, MAIL_HOSTNAME, relayTo);
      relayed.get(s.name)?.push(res);
      log(
        `  ${s.name} relay: ${f1(rate(res))} msg/s, ${res.delivered}/${res.sent} relayed, stack CPU ${f1(res.cpu.totalMs / Math.max(1, res.delivered))} ms/msg${res.failures ? `; ${res.failures}` : ""}`,
      );
    }
    const first = relaying.shift();
    if (first) relaying.push(first);
    for (const s of imapping) {
      log(`round ${r + 1}/${ROUNDS}: ${IMAP.sessions} IMAP sessions from ${IMAP.clients} clients → ${s.name} …`);
      const res = await imapMix(s, users, IMAP, tls);
      imapRuns.get(s.name)?.push(res);
      log(
        `  ${s.name} imap: ${f1(sessionRate(res))} sessions/s, stack CPU ${f2(res.cpu.totalMs / res.sessions)} ms/session${res.failures ? `; ${res.failures}` : ""}`,
      );
    }
    imapping.reverse();
  }

  // --- report
  const command = `scripts/bench-mail${process.argv.length > 2 ? ` ${process.argv.slice(2).join(" ")}` : ""}`;
  console.log(
    `${command}   (${LOAD.messages} messages of ~${LOAD.size} B per round, ${LOAD.sessions} smtp-source sessions on :25, one message per connection, ${ROUNDS} rounds in rotating order; load average at start ${load0})`,
  );
  console.log("");
  console.log(table(["guarantee", "wanted", "bare", "hand", "rendered"], checks, 2));
  console.log("");
  const byName = (n: string): LoadResult[] => results.get(n) ?? [];
  const rowFor = (name: string, rs: LoadResult[]): string[] => {
    const per = (f: (r: LoadResult) => number): number => median(rs.map(f));
    return [
      name,
      String(rs.reduce((a, r) => a + r.delivered, 0)),
      rs.map((r) => f1(rate(r))).join(" "),
      f1(per(rate)),
      f2(per((r) => r.cpu.totalMs / r.totalMs)),
      f2(per((r) => r.cpu.totalMs / r.delivered)),
      f2(per((r) => r.loadgenCpuMs / r.totalMs)),
      `${f1(per((r) => r.delays.a * 1000))}/${f1(per((r) => r.delays.b * 1000))}/${f1(per((r) => r.delays.c * 1000))}/${f1(per((r) => r.delays.d * 1000))}`,
    ];
  };
  const ratio = (a: string, b: string): string => {
    const ra = byName(a);
    const rb = byName(b);
    if (!ra.length || !rb.length) return "-";
    const paired = ra.map((x, i) => rate(x) / rate(rb[i] ?? x));
    // Messages per CPU-second of the stack: what the same cores would carry, less sensitive
    // than msg/s to what else the machine runs meanwhile.
    const cpu = (rs: LoadResult[]): number => median(rs.map((r) => r.cpu.totalMs / r.delivered));
    return `${f2(median(ra.map(rate)) / median(rb.map(rate)))}x (per round ${paired.map(f2).join(" ")}); per CPU-second ${f2(cpu(rb) / cpu(ra))}x`;
  };
  if (results.size) {
    const rows: string[][] = [];
    for (const s of stacks.filter((x) => results.has(x.name)))
      rows.push([...rowFor(s.name, byName(s.name)), await mailFsync(s)]);
    console.log(
      table(
        [
          "stack",
          "delivered",
          "msg/s per round",
          "median msg/s",
          "stack cores",
          "stack CPU ms/msg",
          "loadgen cores",
          "delays a/b/c/d ms",
          "mail_fsync",
        ],
        rows,
      ),
    );
    console.log(
      "stack cores: CPU of all the stack's processes / wall time (2 cores here = saturated); loadgen cores: smtp-source's own CPU / wall time",
    );
    console.log(
      "delays: Postfix's per-message medians: a before qmgr (smtpd, cleanup), b in qmgr, c LMTP connect, d LMTP transfer and Dovecot's delivery",
    );
    console.log("");
    console.log(`rendered / hand msg/s: ${ratio("rendered", "hand")}   target >= 0.9x`);
    console.log(`rendered / bare msg/s: ${ratio("rendered", "bare")}   target >= 0.7x`);
    console.log(`hand / bare msg/s:     ${ratio("hand", "bare")}`);
    for (const v of STAGES)
      if (results.has(v.name)) console.log(`${v.name} / hand msg/s: ${ratio(v.name, "hand")}   (${v.what})`);
    if (results.has("rendered+rspamd") && results.has("hand+rspamd"))
      console.log(
        `rendered+rspamd / hand+rspamd msg/s: ${ratio("rendered+rspamd", "hand+rspamd")}   target >= 0.9x (one Rspamd serves both)`,
      );
    console.log("");
  }
  const cpuPerMsg = (rs: LoadResult[]): number => median(rs.map((r) => r.cpu.totalMs / r.delivered));
  const pairRatio = (runs: Map<string, LoadResult[]>, a: string, b: string): string => {
    const [ra = [], rb = []] = [runs.get(a), runs.get(b)];
    if (!ra.length || !rb.length) return "-";
    return `${f2(median(ra.map(rate)) / median(rb.map(rate)))}x (per round ${ra.map((x, i) => f2(rate(x) / rate(rb[i] ?? x))).join(" ")}); per CPU-second ${f2(cpuPerMsg(rb) / cpuPerMsg(ra))}x`;
  };
  if (submitted.size) {
    console.log(
      table(
        [
          "submission 587",
          "delivered",
          "msg/s per round",
          "median msg/s",
          "stack cores",
          "stack CPU ms/msg",
          "client cores",
        ],
        [...submitted].map(([name, rs]) => rowFor(name, rs).slice(0, 7)),
      ),
    );
    for (const [name, rs] of submitted)
      for (const r of rs) if (r.failures) console.log(`${name} on 587: ${r.failures}`);
    for (const [a, b] of [
      ["rendered", "hand"],
      ["rendered+rspamd", "hand+rspamd"],
    ] as const)
      if (submitted.has(a) && submitted.has(b))
        console.log(`${a} / ${b} msg/s on 587: ${pairRatio(submitted, a, b)}   target >= 0.9x`);
    console.log(
      `(nodemailer pool from this process: ${LOAD.sessions} connections, STARTTLS + AUTH PLAIN, a new connection and login every 20 messages; load@ to itself, delivered locally; client cores = this process's CPU / wall time${submitted.has("hand+rspamd") ? "; the shared Rspamd's CPU counts for the stack whose run it served" : ""})`,
    );
    console.log("");
    printDaemons("CPU ms per message, 587", submitted);
  }
  if (relayed.size) {
    console.log(
      table(
        [
          "relay 587 → MX",
          "relayed",
          "msg/s per round",
          "median msg/s",
          "stack cores",
          "stack CPU ms/msg",
          "client cores",
          "sink cores",
          "delays a/b/c/d ms",
        ],
        [...relayed].map(([name, rs]) => {
          const row = rowFor(name, rs);
          return [...row.slice(0, 7), f2(median(rs.map((r) => (r.sinkCpuMs ?? Number.NaN) / r.totalMs))), row[7] ?? ""];
        }),
      ),
    );
    for (const [name, rs] of relayed) for (const r of rs) if (r.failures) console.log(`${name} relay: ${r.failures}`);
    console.log(`rendered / hand relay msg/s: ${pairRatio(relayed, "rendered", "hand")}   target >= 0.9x`);
    console.log(`rendered / bare relay msg/s: ${pairRatio(relayed, "rendered", "bare")}   target >= 0.7x`);
    console.log(`hand / bare relay msg/s:     ${pairRatio(relayed, "hand", "bare")}`);
    if (relayed.has("rendered+rspamd") && relayed.has("hand+rspamd"))
      console.log(
        `rendered+rspamd / hand+rspamd relay msg/s (DKIM-signed): ${pairRatio(relayed, "rendered+rspamd", "hand+rspamd")}   target >= 0.9x`,
      );
    console.log(
      `(the load mailbox submits on 587 (STARTTLS + AUTH, nodemailer pool as above) to ${REMOTE_USER}; the stack finds the MX through the bench's PowerDNS and relays to smtp-sink in its own namespace; done when Postfix has logged status=sent for each; delays: c = DNS + TCP + EHLO/STARTTLS to the sink, d = transfer; sink cores = smtp-sink's CPU / wall time)`,
    );
    console.log("");
    printDaemons("CPU ms per message, relay", relayed);
  }
  if (imapRuns.size) printImap(imapRuns);
  if (results.size) printDaemons("CPU ms per message", results);
  if (opts.json)
    writeFileSync(
      opts.json,
      `${JSON.stringify(
        Object.fromEntries(
          (
            [
              ["inbound", results],
              ["submission", submitted],
              ["relay", relayed],
            ] as const
          ).map(([k, m]) => [
            k,
            Object.fromEntries(
              [...m].map(([name, rs]) => [
                name,
                rs.map((r) => ({ sent: r.sent, delivered: r.delivered, failures: r.failures ?? null })),
              ]),
            ),
          ]),
        ),
      )}\n`,
    );
  const load1 = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  console.log("");
  console.log(`wall time ${((performance.now() - started) / 1000).toFixed(0)} s; load average at end ${load1}`);
}

let failed = false;
try {
  await main();
} catch (error) {
  failed = true;
  log(`failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await cleanup();
}
process.exit(failed ? 1 : 0);
