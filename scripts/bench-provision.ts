// Benchmark: provisioning mailboxes through the service layer (the same calls the CLI makes), on
// the embedded PGlite and on PostgreSQL (DATABASE_URL_TEST, a fresh database per run). Run by
// scripts/bench-provision, which starts a throwaway PostgreSQL cluster. Measures:
//  - 10,000 mailboxes through addMany in batches of 500 (the mail:import path: set-based checks,
//    one transaction per batch), and 2,000 one at a time (the addvmail path: add(), one
//    transaction each; the per-mailbox cost does not depend on the count), with a ready-made
//    hash: no hashing;
//  - password hashing (SHA512-CRYPT, the default): 500 mailboxes with generated passwords,
//    extrapolated to 10,000 (the hash is CPU-bound and the same for every mailbox);
//  - shvmail of one mailbox (p50/p99 of 200 lookups, service and in-process CLI) and the list of
//    a 10,000-mailbox domain; then the one-mailbox lookup again at 100,000 mailboxes on the vnode
//    (the extra 80,000 rows bulk-inserted with SQL to keep the run short).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { hashPassword } from "../common/password/index.ts";
import { createCliContext } from "../controller/cli/cli-context.ts";
import type { CliContext } from "../controller/cli/cli-context.ts";
import { runCommand } from "../controller/cli/main.ts";
import { Vnode } from "../controller/db/entities/index.ts";
import { openDatabase } from "../controller/db/open-database.ts";
import type { Database } from "../controller/db/open-database.ts";
import { createZoneListProvider } from "../controller/dns/zone-list-provider.ts";
import { createMailServices } from "../controller/mail/create-mail-services.ts";
import type { MailServices } from "../controller/mail/mail-api.ts";
import { freshPostgresUrl } from "../test/helpers/fresh-postgres.ts";

const N = Number(process.env["BENCH_MAILBOXES"] ?? 10_000);
/** The per-call paths cost the same per mailbox at any count: measured on fewer, to stay short. */
const PER_CALL_N = Math.min(N, 2_000);
const HASHED_N = 500;
const BATCH = 500;
const LOOKUPS = 200;
const BIG = 100_000;
const VNODE = "bench";

interface Row {
  backend: string;
  what: string;
  n: number;
  seconds: number;
  rate: number | null;
  note: string;
}

interface Latency {
  backend: string;
  what: string;
  mailboxes: number;
  n: number;
  p50: number;
  p99: number;
}

const rows: Row[] = [];
const latencies: Latency[] = [];

const dns = createZoneListProvider({ zones: [] });
const servicesOn = (db: Database, em = db.em()): MailServices => createMailServices({ em, actor: "bench", dns });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function timeEach(n: number, work: (i: number) => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    await work(i);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

const freshPostgres = async (url: string): Promise<Database> =>
  openDatabase({ url: await freshPostgresUrl(url, "bench") });

/** The CLI in-process on the shared database (no process start, no database open). */
function inProcessCli(db: Database, home: string): (argv: string[]) => Promise<number> {
  const base = createCliContext({
    out: () => undefined,
    err: () => undefined,
    readStdin: async () => "",
    env: { NETSERVA_MAIL_HOME: home, NETSERVA_MAIL_ACTOR: "bench" },
    isTTY: false,
  });
  const ctx: CliContext = { ...base, openDb: async () => ({ ...db, close: async () => undefined }) };
  return async (argv) => {
    const code = await runCommand(argv, ctx);
    if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}`);
    return code;
  };
}

async function bench(backend: string, db: Database): Promise<void> {
  const log = (text: string): void => void process.stderr.write(`[${backend}] ${text}\n`);
  const em = db.em();
  em.create(Vnode, { name: VNODE, address: "127.0.0.1:1" });
  await em.flush();
  const services = servicesOn(db);
  for (const domain of [
    "warm.example",
    "seq.example",
    "one.example",
    "batch.example",
    "hashed.example",
    "big.example",
  ]) {
    await services.domains.add({ vnode: VNODE, domain, skipDnsCheck: true });
  }
  const hash = await hashPassword("bench-password-1", "SHA512-CRYPT");

  // Warm-up (JIT, statement caches): not counted.
  for (let i = 0; i < 200; i++)
    await services.mailboxes.add({ vnode: VNODE, address: `w${i}@warm.example`, passwordHash: hash });

  log(`${PER_CALL_N} mailboxes, one transaction each`);
  let started = performance.now();
  for (let i = 0; i < PER_CALL_N; i++)
    await services.mailboxes.add({ vnode: VNODE, address: `s${i}@seq.example`, passwordHash: hash });
  let seconds = (performance.now() - started) / 1000;
  const sequentialRate = PER_CALL_N / seconds;
  rows.push({
    backend,
    what: "addvmail path: add(), 1 transaction each",
    n: PER_CALL_N,
    seconds,
    rate: sequentialRate,
    note: "no hashing (hash given)",
  });

  log(`${PER_CALL_N} mailboxes, ${BATCH} add() per transaction`);
  started = performance.now();
  for (let b = 0; b < PER_CALL_N; b += BATCH) {
    await db.em().transactional(async (tx) => {
      const batch = servicesOn(db, tx);
      for (let i = b; i < Math.min(PER_CALL_N, b + BATCH); i++)
        await batch.mailboxes.add({ vnode: VNODE, address: `u${i}@batch.example`, passwordHash: hash });
    });
  }
  seconds = (performance.now() - started) / 1000;
  rows.push({
    backend,
    what: `add(), ${BATCH} per transaction`,
    n: PER_CALL_N,
    seconds,
    rate: PER_CALL_N / seconds,
    note: "no hashing (hash given)",
  });

  log(`${N} mailboxes, addMany of ${BATCH}`);
  started = performance.now();
  for (let b = 0; b < N; b += BATCH) {
    const mailboxes = Array.from({ length: Math.min(BATCH, N - b) }, (_, k) => ({
      address: `u${b + k}@one.example`,
      passwordHash: hash,
    }));
    const result = await services.mailboxes.addMany({ vnode: VNODE, mailboxes });
    if (result.value.refused.length)
      throw new Error(`addMany refused ${result.value.refused.length}: ${result.value.refused[0]?.error.message}`);
  }
  seconds = (performance.now() - started) / 1000;
  const manyRate = N / seconds;
  rows.push({
    backend,
    what: `mail:import path: addMany(${BATCH})`,
    n: N,
    seconds,
    rate: manyRate,
    note: "no hashing (hash given)",
  });

  log(`${HASHED_N} mailboxes with generated passwords (SHA512-CRYPT)`);
  started = performance.now();
  for (let i = 0; i < HASHED_N; i++) await services.mailboxes.add({ vnode: VNODE, address: `h${i}@hashed.example` });
  seconds = (performance.now() - started) / 1000;
  const hashedRate = HASHED_N / seconds;
  rows.push({
    backend,
    what: "addvmail path, generated password",
    n: HASHED_N,
    seconds,
    rate: hashedRate,
    note: "SHA512-CRYPT, 5000 rounds",
  });
  const perHash = seconds / HASHED_N - 1 / sequentialRate;
  const extrapolated = N / manyRate + N * perHash;
  rows.push({
    backend,
    what: `  extrapolated to ${N}, import path`,
    n: N,
    seconds: extrapolated,
    rate: N / extrapolated,
    note: `measured on ${HASHED_N}: +${(perHash * 1000).toFixed(2)} ms/mailbox for hashing`,
  });

  const total = async (): Promise<number> =>
    Number((await db.em().execute<Array<{ n: number }>>("select count(*)::int as n from mail_vboxes"))[0]?.n ?? 0);
  const home = mkdtempSync(join(tmpdir(), "nsm-bench-home-"));
  try {
    const cli = inProcessCli(db, home);
    const lookups = async (label: string): Promise<void> => {
      const mailboxes = await total();
      const pick = (i: number): string => `u${(i * 7919) % N}@one.example`; // the 10,000-mailbox domain
      const service = await timeEach(LOOKUPS, (i) => services.mailboxes.get(VNODE, pick(i)));
      latencies.push({ backend, what: `shvmail one mailbox (service)${label}`, mailboxes, n: LOOKUPS, ...service });
      const viaCli = await timeEach(LOOKUPS, (i) => cli(["shvmail", VNODE, pick(i), "--json"]));
      latencies.push({
        backend,
        what: `shvmail one mailbox (CLI in-process)${label}`,
        mailboxes,
        n: LOOKUPS,
        ...viaCli,
      });
    };
    await lookups("");
    const list = await timeEach(5, () => services.mailboxes.list(VNODE, "@one.example"));
    latencies.push({
      backend,
      what: `shvmail @domain list of ${N} (service)`,
      mailboxes: await total(),
      n: 5,
      ...list,
    });
    const listCli = await timeEach(3, () => cli(["shvmail", VNODE, "@one.example", "--format", "json"]));
    latencies.push({
      backend,
      what: `shvmail @domain list of ${N} (CLI, JSON)`,
      mailboxes: await total(),
      n: 3,
      ...listCli,
    });

    const extra = BIG - (await total());
    log(`bulk insert of ${extra} rows to reach ${BIG}`);
    const big = await db.em().execute<Array<{ id: number }>>("select id from mail_vhosts where domain = 'big.example'");
    await db.em().execute(
      `insert into mail_vboxes (domain_id, local_part, address, password_hash, quota, maildir)
       select ?, 'b' || g, 'b' || g || '@big.example', ?, 1073741824, '/srv/big.example/msg/b' || g || '/Maildir'
       from generate_series(1, ?) g`,
      [big[0]?.id ?? 0, hash, extra],
    );
    await db.em().execute("analyze");
    await lookups(` at ${BIG}`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

function printTables(): void {
  const table = (header: string[], body: string[][]): string => {
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
    const line = (cells: string[]): string =>
      cells
        .map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
        .join("  ")
        .trimEnd();
    return [line(header), ...body.map(line)].join("\n");
  };
  console.log(
    table(
      ["backend", "provisioning", "mailboxes", "seconds", "mailboxes/s", "note"],
      rows.map((r) => [
        r.backend,
        r.what,
        String(r.n),
        r.seconds.toFixed(2),
        r.rate === null ? "-" : r.rate.toFixed(0),
        r.note,
      ]),
    ),
  );
  console.log();
  console.log(
    table(
      ["backend", "lookup", "mailboxes on vnode", "samples", "p50 ms", "p99 ms"],
      latencies.map((l) => [l.backend, l.what, String(l.mailboxes), String(l.n), l.p50.toFixed(2), l.p99.toFixed(2)]),
    ),
  );
  console.log();
  for (const backend of new Set(rows.map((r) => r.backend))) {
    const best = Math.max(
      ...rows.filter((r) => r.backend === backend && r.note.startsWith("no hashing")).map((r) => r.rate ?? 0),
    );
    const one = latencies.find((l) => l.backend === backend && l.what === `shvmail one mailbox (service) at ${BIG}`);
    const cli = latencies.find(
      (l) => l.backend === backend && l.what === `shvmail one mailbox (CLI in-process) at ${BIG}`,
    );
    console.log(
      `${backend}: provisioning without hashing ${best.toFixed(0)} mailboxes/s (target >= 2000: ${best >= 2000 ? "met" : "NOT met"}); ` +
        `shvmail one mailbox at ${BIG}: p50 ${one?.p50.toFixed(2)} ms service, ${cli?.p50.toFixed(2)} ms CLI (target < 20 ms: ${(cli?.p50 ?? Infinity) < 20 ? "met" : "NOT met"})`,
    );
  }
}

const targets: Array<[string, () => Promise<Database>]> = [["pglite", () => openDatabase({ dataDir: "memory://" })]];
const pgUrl = process.env["DATABASE_URL_TEST"];
if (pgUrl && !process.argv.includes("--pglite-only")) targets.push(["postgresql", () => freshPostgres(pgUrl)]);
else process.stderr.write("DATABASE_URL_TEST not set: PGlite only\n");

const only = process.argv.includes("--postgresql-only") ? targets.filter(([name]) => name === "postgresql") : targets;
for (const [backend, open] of only) {
  const db = await open();
  try {
    await bench(backend, db);
  } finally {
    await db.close();
  }
}
printTables();
