// A running agent loads none of the controller: a real agent process on a mail vnode (enrolled,
// health stream connected, whole state and incremental changes applied) records every module it
// resolves through a loader hook, and the list holds nothing from controller/, no MikroORM, no
// PGlite, no commander. `netserva-mail agent enroll` (the old spelling) is checked the same way.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMailFleet, until, type MailFleet } from "../helpers/mail-fleet.ts";
import { CONTROLLER_ONLY_PACKAGES, REPO } from "../helpers/module-graph.ts";

const isRoot = process.getuid?.() === 0;
const HOOK = pathToFileURL(join(REPO, "test", "helpers", "record-modules.ts")).href;

let dir: string;
let fleet: MailFleet;

function hookArgs(listFile: string): string[] {
  return ["--import", `${HOOK}?out=${encodeURIComponent(listFile)}`];
}

function loaded(listFile: string): string[] {
  return [...new Set(readFileSync(listFile, "utf8").trim().split("\n"))];
}

/** What a module list holds that an agent must not load. */
function forbidden(urls: string[]): string[] {
  const controller = pathToFileURL(join(REPO, "controller")).href + "/";
  return urls.filter((url) => {
    if (url.startsWith(controller)) return true;
    const inPackages = url.split("/node_modules/").pop() ?? "";
    return url.includes("/node_modules/") && CONTROLLER_ONLY_PACKAGES.some((re) => re.test(inPackages));
  });
}

function repoFile(path: string): string {
  return pathToFileURL(join(REPO, path)).href;
}

describe.skipIf(!isRoot)("the agent process loads none of the controller", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "nsm-modules-"));
    fleet = await startMailFleet(["mods1"], "mods", { agentNodeArgs: hookArgs(join(dir, "serve.txt")) });
  }, 180_000);

  afterAll(async () => {
    await fleet?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("serving mail: enrolled, health stream up, whole state and a change applied", async () => {
    const vn = fleet.vnodes[0];
    if (!vn) throw new Error("no vnode");
    const added = await fleet.harness.cli(
      ["addvmail", vn.name, `alice@${vn.domain}`, "--password-stdin"],
      "Alice-pw-1\n",
    );
    expect(added.code, added.err).toBe(0);
    await until(
      async () => {
        const rows = JSON.parse((await fleet.harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
        const row = rows.find((r) => r["vnode"] === vn.name);
        return row && row["connected"] === true && row["appliedGeneration"] === row["generation"] ? row : undefined;
      },
      60_000,
      "the mailbox to be applied",
    );
    const urls = loaded(join(dir, "serve.txt"));
    // The list is the real one: the daemon, the mail host and the gRPC server were loaded.
    expect(urls).toContain(repoFile("agent/agent-daemon.ts"));
    expect(urls).toContain(repoFile("agent/mail/mail-host.ts"));
    expect(urls.some((u) => u.includes("/node_modules/@grpc/grpc-js/"))).toBe(true);
    expect(forbidden(urls)).toEqual([]);
  });

  it("enrolling through `netserva-mail agent enroll`, dispatched before any controller module", async () => {
    const added = await fleet.harness.cli(["vnode", "add", "mods2", "--address", "127.0.0.1:9"]);
    expect(added.code, added.err).toBe(0);
    const token = added.out.trim().split("\n").pop() ?? "";
    const listFile = join(dir, "enroll.txt");
    const args = [
      ...hookArgs(listFile),
      join(REPO, "bin", "netserva-mail.js"),
      "agent",
      "enroll",
      "--controller",
      fleet.harness.controllerAddress,
      "--token",
      token,
      "--home",
      join(dir, "agent-mods2"),
    ];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code, output).toBe(0);
    expect(output).toMatch(/enrolled as vnode mods2/);
    const urls = loaded(listFile);
    expect(urls).toContain(repoFile("agent/enroll/enroll.ts"));
    expect(forbidden(urls)).toEqual([]);
  });
});
