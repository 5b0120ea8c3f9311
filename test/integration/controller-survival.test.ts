// The controller daemon survives its own clients: a real `serve` process on the embedded database
// with a few thousand mailboxes, CLI clients killed while it streams a long listing, a malformed
// request, a client that closes the pipe it prints to. The daemon keeps answering, logs each
// broken connection once with the peer, and its last-resort handler never fires: the fix is the
// handler on the connection, not the net under it.
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../controller/db/open-database.ts";
import { BIN, startServeProcess } from "../helpers/serve-process.ts";
import type { ServeProcess } from "../helpers/serve-process.ts";

const MAILBOXES = 2000;
let serve: ServeProcess;

function mailboxCsv(n: number): string {
  const hash = `{SHA512-CRYPT}$6$abcdefgh$${"x".repeat(86)}`;
  const lines = ["kind,address,passwordHash"];
  for (let i = 0; i < n; i += 1) lines.push(`mailbox,user${i}@example.com,${hash}`);
  return lines.join("\n") + "\n";
}

/** Sends a request as the CLI does and hangs up as soon as the first output arrives. */
function hangUpMidStream(socketPath: string, argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let received = 0;
    socket.on("error", () => undefined);
    socket.once("connect", () => socket.write(JSON.stringify({ argv, stdin: "", actor: "tester" }) + "\n"));
    socket.once("data", (chunk: Buffer) => {
      received = chunk.length;
      socket.destroy();
    });
    socket.once("close", () => (received > 0 ? resolve(received) : reject(new Error("no output before close"))));
  });
}

/** Runs the real CLI as its own process and SIGKILLs it once it has printed something. */
function killCliMidStream(home: string, argv: string[]): Promise<NodeJS.Signals | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      env: { PATH: process.env["PATH"] ?? "", NETSERVA_MAIL_HOME: home },
      stdio: ["ignore", "pipe", "ignore"],
    });
    child.stdout.once("data", () => child.kill("SIGKILL"));
    child.once("exit", (_code, signal) => resolve(signal));
  });
}

/** Runs the real CLI as its own process to its end; its exit code. */
function runRealCli(home: string, argv: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...argv], {
      env: { PATH: process.env["PATH"] ?? "", NETSERVA_MAIL_HOME: home },
      stdio: ["ignore", "ignore", "ignore"],
    });
    child.once("exit", (code) => resolve(code));
  });
}

/** The daemon still answers, and its last-resort handler never fired. */
async function answers(): Promise<void> {
  const status = await serve.cli(["status", "--json"]);
  expect(status.code).toBe(0);
  expect((JSON.parse(status.out) as Array<{ vnode: string }>).map((v) => v.vnode)).toEqual(["mx1"]);
  expect(serve.child.exitCode).toBeNull();
  expect(await serve.metric('netserva_controller_last_resort_total{kind="uncaught_exception"}')).toBe(0);
  expect(await serve.metric('netserva_controller_last_resort_total{kind="unhandled_rejection"}')).toBe(0);
  expect(serve.stderr()).not.toContain("last resort");
}

async function startWithMailboxes(n: number): Promise<ServeProcess> {
  const started = await startServeProcess();
  expect((await started.cli(["vnode", "add", "mx1", "--address", "127.0.0.1:9"])).code).toBe(0);
  expect((await started.cli(["addvmaildomain", "mx1", "example.com"])).code).toBe(0);
  const imported = await started.cli(
    ["mail:import", "-", "--input-format", "csv", "--vnode", "mx1", "--skip-dns-check"],
    mailboxCsv(n),
  );
  expect(imported.out + imported.err).toContain(`imported ${n} of ${n} rows`);
  return started;
}

async function stopAndRemove(s: ServeProcess | undefined): Promise<void> {
  await s?.stop();
  if (s) rmSync(s.dir, { recursive: true, force: true });
}

function logLines(message: string): Array<Record<string, unknown>> {
  return serve
    .stderr()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l["msg"] === message);
}

// Each test stands alone on the shared daemon (it only reads the mailboxes made here); the
// command-log test stops its own daemon to read the database.
describe("controller daemon survives its clients", () => {
  beforeAll(async () => {
    serve = await startWithMailboxes(MAILBOXES);
  });
  afterAll(() => stopAndRemove(serve));

  it("a client that hangs up mid-listing ends only its own connection, logged once with the peer", async () => {
    const listings = [
      ["shvmail", "mx1", "--json"],
      ["shvmail", "mx1"],
      ["mail:export", "mx1"],
      ["mail:export", "mx1", "--format", "csv"],
    ];
    for (const argv of listings) {
      await hangUpMidStream(serve.socket, argv);
      await answers();
    }
    // The real CLI, killed while it prints (Ctrl-C in the issue; SIGKILL leaves no cleanup at all).
    expect(await killCliMidStream(serve.home, ["shvmail", "mx1", "--json"])).toBe("SIGKILL");
    await answers();
    expect(await killCliMidStream(serve.home, ["mail:export", "mx1"])).toBe("SIGKILL");
    await answers();

    const failed = logLines("admin client connection failed");
    expect(failed.length).toBeGreaterThan(0);
    const ids = failed.map((l) => l["admin_connection"]);
    expect(new Set(ids).size).toBe(ids.length); // once per connection
    for (const line of failed) expect(line["peer_uid"]).toBe(process.getuid?.());
    expect(await serve.metric("netserva_controller_admin_client_errors_total")).toBe(failed.length);
  });

  it("a malformed or truncated request is refused on its connection only", async () => {
    const raw = (payload: string, hangUp = false): Promise<string> =>
      new Promise((resolve) => {
        const socket = connect(serve.socket);
        let text = "";
        socket.setEncoding("utf8");
        socket.on("data", (c: string) => void (text += c));
        socket.on("error", () => undefined);
        socket.once("connect", () => (hangUp ? socket.end(payload) : socket.write(payload)));
        socket.once("close", () => resolve(text));
      });
    expect(await raw("not json\n")).toContain('"exit":2');
    expect(await raw('{"argv": [1, 2]}\n')).toContain('"exit":2');
    expect(await raw('{"argv": ["status"', true)).toBe(""); // no newline: nothing to run
    await answers();
  });

  it("`shvmail … | head -1` exits quietly, like a Unix tool", async () => {
    const result = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(
        "bash",
        ["-c", `"${process.execPath}" "${BIN}" shvmail mx1 --json | head -1; exit \${PIPESTATUS[0]}`],
        {
          env: { PATH: process.env["PATH"] ?? "", NETSERVA_MAIL_HOME: serve.home },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let out = "";
      let err = "";
      child.stdout.on("data", (c: Buffer) => void (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => void (err += c.toString()));
      child.once("close", (code) => resolve({ code, out, err }));
    });
    expect(result).toEqual({ code: 0, out: "[\n", err: "" });
    await answers();
  });

  it("mail:export --output creates the file exclusively, mode 0600, in the caller's directory, never through a link", async () => {
    const dir = mkdtempSync(join(tmpdir(), "nsm-export-"));
    try {
      const first = await serve.cli(["mail:export", "mx1", "--output", "out.json"], "", dir);
      expect(first.code).toBe(0);
      expect(statSync(join(dir, "out.json")).mode & 0o777).toBe(0o600);
      const exported = readFileSync(join(dir, "out.json"), "utf8");
      expect((JSON.parse(exported) as { rows: unknown[] }).rows.length).toBe(MAILBOXES + 1);
      // Never over an existing file...
      const again = await serve.cli(["mail:export", "mx1", "--output", "out.json"], "", dir);
      expect(again.code).toBe(4);
      expect(again.err).toMatch(/output: .*out\.json exists/);
      expect(readFileSync(join(dir, "out.json"), "utf8")).toBe(exported);
      // ...nor through a symbolic link, dangling or not.
      symlinkSync(join(dir, "planted"), join(dir, "dangling.json"));
      writeFileSync(join(dir, "victim"), "keep\n", { mode: 0o644 });
      symlinkSync(join(dir, "victim"), join(dir, "link.json"));
      for (const name of ["dangling.json", "link.json"]) {
        const refused = await serve.cli(["mail:export", "mx1", "--output", name], "", dir);
        expect(refused.code).toBe(4);
      }
      expect(existsSync(join(dir, "planted"))).toBe(false);
      expect(readFileSync(join(dir, "victim"), "utf8")).toBe("keep\n");
      expect(statSync(join(dir, "victim")).mode & 0o777).toBe(0o644);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the command log names the real caller", () => {
  let own: ServeProcess | undefined;
  afterAll(() => stopAndRemove(own));

  it("an in-test client and the real CLI process, each recorded as who they are", async () => {
    own = await startWithMailboxes(3);
    expect((await own.cli(["mail:export", "mx1"])).code).toBe(0); // the in-test client calls itself "tester"
    expect(await runRealCli(own.home, ["mail:export", "mx1"])).toBe(0);
    expect(await own.stop()).toBe(0);
    const db = await openDatabase({ dataDir: `${own.home}/db` });
    try {
      const rows = await db
        .em()
        .getConnection()
        .execute<Array<{ actor: string }>>("select distinct actor from command_log where command = 'mail:export'");
      const uid = process.getuid?.() ?? -1;
      // "tester" is what the in-test clients call themselves, "root"/… the spawned CLI's user name.
      for (const { actor } of rows) expect(actor).toMatch(new RegExp(`^\\S+ \\(uid ${uid}\\b`));
      expect(rows.filter((r) => r.actor.startsWith("tester ")).length).toBe(1);
      expect(rows.filter((r) => !r.actor.startsWith("tester ")).length).toBe(1);
    } finally {
      await db.close();
    }
  });
});
