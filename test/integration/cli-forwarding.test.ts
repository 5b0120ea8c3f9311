// A CLI command forwarded to a running `serve` (embedded database) loads no MikroORM, no PGlite,
// no commander and no command module: real processes, every resolved module recorded by a loader
// hook. Not timed (scripts/bench-footprint measures the time).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../helpers/controller-harness.ts";
import { until } from "../helpers/mail-fleet.ts";
import { CONTROLLER_ONLY_PACKAGES, REPO } from "../helpers/module-graph.ts";

const BIN = join(REPO, "bin", "netserva-mail.js");
const HOOK = pathToFileURL(join(REPO, "test", "helpers", "record-modules.ts")).href;

let dir: string;
let env: NodeJS.ProcessEnv;
let serve: ReturnType<typeof spawn> | undefined;

function run(args: string[], nodeArgs: string[] = []): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, out, err })));
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "nsm-forward-"));
  env = { PATH: process.env["PATH"], NETSERVA_MAIL_HOME: join(dir, "home"), NETSERVA_MAIL_ACTOR: "test" };
  const init = await run(["init", "--listen", `127.0.0.1:${await freePort()}`]);
  expect(init.code, init.err).toBe(0);
  serve = spawn(process.execPath, [BIN, "serve"], { env, stdio: ["ignore", "ignore", "ignore"] });
  const socket = join(dir, "home", "controller.sock");
  await until(async () => (existsSync(socket) ? true : undefined), 60_000, "serve's admin socket");
  const added = await run(["vnode", "add", "mx1", "--address", "127.0.0.1:9"]);
  expect(added.code, added.err).toBe(0);
  const domain = await run(["addvmaildomain", "mx1", "seen.test", "--skip-dns-check"]);
  expect(domain.code, domain.err).toBe(0);
}, 90_000);

afterAll(async () => {
  if (serve && serve.exitCode === null) {
    const exited = new Promise((resolve) => serve?.once("exit", resolve));
    serve.kill("SIGTERM");
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("a command forwarded to serve", () => {
  it.each([
    ["addvmaildomain", ["addvmaildomain", "mx1", "example.test", "--skip-dns-check"], /added mail domain example.test/],
    ["shvmaildomain", ["shvmaildomain", "mx1", "seen.test"], /seen\.test/],
  ])("%s loads neither MikroORM, PGlite, commander nor the command tree", async (name, args, expected) => {
    const listFile = join(dir, `${name}.modules`);
    const result = await run(args, ["--import", `${HOOK}?out=${encodeURIComponent(listFile)}`]);
    expect(result.code, result.err).toBe(0);
    expect(result.out + result.err).toMatch(expected);
    const urls = [...new Set(readFileSync(listFile, "utf8").trim().split("\n"))];
    // The list is the real one: the entry and the admin-socket client were loaded.
    expect(urls).toContain(pathToFileURL(join(REPO, "controller", "cli", "admin-socket.ts")).href);
    const loadedPackages = urls.filter((u) => u.includes("/node_modules/")).map((u) => u.split("/node_modules/").pop());
    expect(loadedPackages.filter((p) => CONTROLLER_ONLY_PACKAGES.some((re) => re.test(p ?? "")))).toEqual([]);
    const commandTree = pathToFileURL(join(REPO, "controller", "cli", "program.ts")).href;
    const commandModules = pathToFileURL(join(REPO, "controller", "cli", "commands")).href + "/";
    expect(urls.filter((u) => u === commandTree || u.startsWith(commandModules))).toEqual([
      pathToFileURL(join(REPO, "controller", "cli", "commands", "mail-registry.ts")).href,
    ]);
  });
});
