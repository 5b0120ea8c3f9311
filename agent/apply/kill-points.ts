// Fault injection for the crash tests (issue 13): named points on the apply path where the agent
// SIGKILLs itself, so a test can prove that a crash at any step leaves the old or the new config
// and lookup data, never a mix. Off unless the agent's entry point arms it from the environment
// (NETSERVA_AGENT_KILL_AT / NETSERVA_AGENT_FAIL_AT); disarmed, every hook is one boolean test.
//
// A spec is `<point>[#<n>]`: the n-th time (default 1) the point is reached in this process.
// Several specs may be given, separated by commas. The points:
//
//   stage               after each file written into the staging mirror (#n: after the n-th)
//   check:<program>     while a checker's child runs: check:postfix (postfix check),
//                       check:postconf, check:postmap (#1.. one per map), check:doveconf,
//                       check:sievec, check:rspamadm, check:clamconf
//   journal             undo journal durable, nothing written aside yet
//   aside               after each new file written aside (#n)
//   rename              after each rename into place (#n: between rename n and n+1)
//   reload              before the daemons are reloaded
//   reload:<program>    while a reload's child runs: reload:postfix, reload:doveadm, reload:sievec
//   verify              daemons reloaded, before they are checked
//   restore             during a rollback, after each file put back (#n)
//   rollback:<program>  while the rollback's reload child runs (reload:… again, on old files)
//   commit              verified, before the lookup rows and the commit mark are written
//   lookup:before-commit  inside the SQLite write transaction, rows written, before COMMIT
//   lookup:after-commit   right after COMMIT
//   bookkeeping         committed, manifest written, before the undo journal is removed
//   recover             at start-up recovery, after each file rolled back or forward (#n)
//   state-file:before   before the applied generation is written
//   state-file:after    after the applied generation is written
//
// FAIL_AT uses the same names (not the <program> ones) and throws there instead: a test forces a
// rollback with NETSERVA_AGENT_FAIL_AT=verify and kills it with NETSERVA_AGENT_KILL_AT=restore#2.
import { AsyncLocalStorage } from "node:async_hooks";
import { writeSync } from "node:fs";
import { basename } from "node:path";

interface Spec {
  readonly point: string;
  readonly nth: number;
}

interface Armed {
  readonly kill: readonly Spec[];
  readonly fail: readonly Spec[];
  readonly seen: Map<string, number>;
}

let armed: Armed | undefined;
const scope = new AsyncLocalStorage<string>();

function parse(specs: string | undefined, variable: string): Spec[] {
  if (specs === undefined || specs.trim() === "") return [];
  return specs.split(",").map((raw) => {
    const m = /^([a-z][a-z0-9:-]*)(?:#([1-9][0-9]{0,5}))?$/.exec(raw.trim());
    if (!m) throw new Error(`${variable}: '${raw}' is not <point>[#<n>]`);
    return { point: m[1] ?? "", nth: Number(m[2] ?? "1") };
  });
}

/** Called once by the agent's entry point with the environment's values; nothing set: disarmed. */
export function armKillPoints(o: { killAt?: string | undefined; failAt?: string | undefined }): void {
  const kill = parse(o.killAt, "NETSERVA_AGENT_KILL_AT");
  const fail = parse(o.failAt, "NETSERVA_AGENT_FAIL_AT");
  armed = kill.length + fail.length > 0 ? { kill, fail, seen: new Map() } : undefined;
}

/** The agent reached `point`: die here, or throw here, when a test asked for it. */
export function killPoint(point: string): void {
  if (!armed) return;
  const n = (armed.seen.get(point) ?? 0) + 1;
  armed.seen.set(point, n);
  if (armed.kill.some((s) => s.point === point && s.nth === n)) die(`${point}#${n}`);
  if (armed.fail.some((s) => s.point === point && s.nth === n))
    throw new Error(`injected failure at ${point}#${n} (NETSERVA_AGENT_FAIL_AT)`);
}

/** Runs `work` as step `name`: a child started inside it reaches the point `<name>:<program>`. */
export function inKillScope<T>(name: string, work: () => Promise<T>): Promise<T> {
  return armed ? scope.run(name, work) : work();
}

/** process.ts calls this right after spawning `file`: the child runs while the agent dies. */
export function childStarted(file: string): void {
  if (!armed) return;
  const step = scope.getStore();
  if (step === undefined) return;
  const point = `${step}:${basename(file)}`;
  const n = (armed.seen.get(point) ?? 0) + 1;
  armed.seen.set(point, n);
  if (armed.kill.some((s) => s.point === point && s.nth === n)) die(`${point}#${n}`);
}

function die(where: string): never {
  // Synchronous, so the line is in the log before the signal: the test reads where it died.
  writeSync(2, `netserva-agent: kill point ${where} reached: SIGKILL (NETSERVA_AGENT_KILL_AT)\n`);
  process.kill(process.pid, "SIGKILL");
  // SIGKILL cannot be caught; this only satisfies the type checker.
  throw new Error("unreachable");
}
