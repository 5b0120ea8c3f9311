// Hands off by default: an agent that finds mail configuration it did not write (here a foreign
// main.cf and dovecot.conf under its root) starts unmanaged. It reports health, renders and
// changes nothing; the reconciler never pushes onto it (a generation waits, stored); status says
// why. `vnode manage` lists what it overwrites, asks, keeps the originals aside and switches.
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVnodePaths } from "../../agent/paths.ts";
import { keptAside } from "../../agent/mail/management.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";
import { startAgentProcess, type AgentProcess } from "../helpers/agent-process.ts";
import { until } from "../helpers/mail-fleet.ts";
import { createTestNetns, type TestNetns } from "../helpers/netns.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");
const PORT = 7444;
const NAME = "hands-off";
const FOREIGN_MAIN = "# stock main.cf written by someone else\nmyhostname = foreign.test\n";
const FOREIGN_DOVECOT = "# NetServa's dovecot.conf\nprotocols = imap\n";

type Row = Record<string, unknown>;
let harness: Harness;
let ns: TestNetns;
let root: string;
let agent: AgentProcess | undefined;
let logDir: string;

const digest = (file: string): string => createHash("sha256").update(readFileSync(file)).digest("hex");
const statusRow = async (): Promise<Row | undefined> =>
  (JSON.parse((await harness.cli(["status", "--json"])).out) as Row[]).find((r) => r["vnode"] === NAME);

describe.skipIf(!canRun)("an unmanaged vnode: hands off until `vnode manage`", () => {
  beforeAll(async () => {
    harness = await startHarness({ healthIntervalMs: 300 });
    logDir = mkdtempSync(join(tmpdir(), "nsm-unmanaged-logs-"));
    ns = await createTestNetns("f17u");
    root = mkdtempSync(join(tmpdir(), "nsm-unmanaged-root-"));
    chmodSync(root, 0o755);
    const paths = createVnodePaths(root);
    mkdirSync(paths.postfixDir, { recursive: true });
    mkdirSync(paths.dovecotDir, { recursive: true });
    writeFileSync(paths.postfixMainCf, FOREIGN_MAIN);
    writeFileSync(paths.dovecotConf, FOREIGN_DOVECOT);
    const { home } = await harness.enrollVnode(NAME, `${ns.nsAddress}:${PORT}`, "agent-hands-off");
    const set = await harness.cli([
      "vnode",
      "set",
      NAME,
      "--mail-hostname",
      "mail.hands-off.test",
      "--mail-listen",
      ns.nsAddress,
    ]);
    expect(set.code, set.err).toBe(0);
    agent = await startAgentProcess({ ns, home, root, port: PORT, logDir });
  }, 120_000);

  afterAll(async () => {
    await agent?.stop().catch(() => undefined);
    await ns?.destroy();
    await harness?.close();
    if (root && !process.env["KEEP_LOGS"]) rmSync(root, { recursive: true, force: true });
    if (logDir && !process.env["KEEP_LOGS"]) rmSync(logDir, { recursive: true, force: true });
  });

  // One scenario in order: the switch ends the hands-off phase, so both halves live in one test.
  it("reports unmanaged and why, changes nothing, is never pushed; `vnode manage` switches it", async () => {
    const paths = createVnodePaths(root);
    const before = { main: digest(paths.postfixMainCf), dovecot: digest(paths.dovecotConf) };
    const row = await until(
      async () => {
        const r = await statusRow();
        return r?.["connected"] === true && r["management"] === "unmanaged" ? r : undefined;
      },
      60_000,
      "the vnode to report unmanaged",
    );
    expect(String(row["managementReason"])).toContain(paths.postfixMainCf);
    expect(Number(row["generation"])).toBeGreaterThan(0);
    // Several health reports later (each one a chance for the reconciler), nothing was pushed.
    const seen = new Set<string>();
    await until(
      async () => {
        seen.add(String((await statusRow())?.["lastHealthAt"]));
        return seen.size >= 5 ? true : undefined;
      },
      30_000,
      "five health reports",
    );
    const after = await statusRow();
    expect(after?.["appliedGeneration"]).toBe(0);
    expect(after?.["refused"]).toBeNull();
    expect(digest(paths.postfixMainCf)).toBe(before.main);
    expect(digest(paths.dovecotConf)).toBe(before.dovecot);
    expect(existsSync(paths.manifest)).toBe(false);
    expect(existsSync(paths.lookupDb)).toBe(false);
    expect(existsSync(paths.postfixMasterCf)).toBe(false);
    // The table says so too.
    expect((await harness.cli(["status"])).out).toContain("unmanaged:");
    // A mail change is stored, not pushed, with the way out.
    const domain = await harness.cli(["addvmaildomain", NAME, "hands-off.test", "--skip-dns-check"]);
    expect(domain.err).toContain("unmanaged");
    expect(digest(paths.postfixMainCf)).toBe(before.main);
    expect(readFileSync(agent?.logFile ?? "", "utf8")).not.toContain("state applied");

    // The way out: `vnode manage` says what it overwrites, asks, keeps the originals aside, switches.
    const dry = await harness.cli(["vnode", "manage", NAME, "--dry-run"]);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toContain(paths.postfixMainCf);
    expect(dry.out).toContain(paths.dovecotConf);
    expect(readFileSync(paths.postfixMainCf, "utf8")).toBe(FOREIGN_MAIN);
    // No terminal to ask on and no --yes: refused as usage, nothing changed.
    const unasked = await harness.cli(["vnode", "manage", NAME]);
    expect(unasked.code).toBe(2);
    expect(readFileSync(paths.postfixMainCf, "utf8")).toBe(FOREIGN_MAIN);

    const switched = await harness.cli(["vnode", "manage", NAME, "--yes"]);
    expect(switched.code, switched.err).toBe(0);
    expect(switched.out + switched.err).toContain("live on");
    expect(readFileSync(paths.postfixMainCf, "utf8")).toContain("Rendered by netserva-mail");
    expect(readFileSync(keptAside(paths, paths.postfixMainCf) ?? "", "utf8")).toBe(FOREIGN_MAIN);
    expect(readFileSync(keptAside(paths, paths.dovecotConf) ?? "", "utf8")).toBe(FOREIGN_DOVECOT);
    const managedRow = await until(
      async () => {
        const r = await statusRow();
        return r?.["management"] === "managed" && r["appliedGeneration"] === r["generation"] ? r : undefined;
      },
      60_000,
      "managed at its generation",
    );
    expect(managedRow["managementReason"]).toBeNull();
    // Managed now: the domain stored while hands-off is live.
    expect(existsSync(paths.lookupDb)).toBe(true);
  }, 300_000);
});
