// `vnode adopt --dry-run` against a vnode configured the NetServa way: the agent starts hands
// off (it finds the sysadm DB and a main.cf it did not write), reads the sysadm DB read-only over
// ReadInventory, and the controller reports what it would import and refuse. Nothing under the
// vnode's root changes (digests), and no hash or password appears in the output.
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";
import { startAgentProcess, type AgentProcess } from "../helpers/agent-process.ts";
import { until } from "../helpers/mail-fleet.ts";
import { createTestNetns, type TestNetns } from "../helpers/netns.ts";
import { writeNetservaFixture, type NetservaFixture } from "../helpers/netserva-fixture.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/bin/doveadm");
const PORT = 7444;
const NAME = "netserva";
const DOMAINS = 5;
const PER_DOMAIN = 60;

let harness: Harness;
let ns: TestNetns;
let root: string;
let logDir: string;
let agent: AgentProcess | undefined;
let fixture: NetservaFixture;

/** Every file under root with its digest: "nothing changed" is this map being equal. */
function tree(dir: string, out = new Map<string, string>()): Map<string, string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    if (st.isDirectory()) tree(path, out);
    else out.set(path, `${st.mode}:${createHash("sha256").update(readFileSync(path)).digest("hex")}`);
  }
  return out;
}

describe.skipIf(!canRun)("vnode adopt --dry-run on a NetServa vnode", () => {
  beforeAll(async () => {
    harness = await startHarness({ healthIntervalMs: 300 });
    logDir = mkdtempSync(join(tmpdir(), "nsm-adopt-logs-"));
    ns = await createTestNetns("f17a");
    root = mkdtempSync(join(tmpdir(), "nsm-adopt-root-"));
    chmodSync(root, 0o755);
    fixture = writeNetservaFixture(root, { domains: DOMAINS, perDomain: PER_DOMAIN });
    const { home } = await harness.enrollVnode(NAME, `${ns.nsAddress}:${PORT}`, "agent-netserva");
    // The preview renders the configuration, which needs a mail hostname (the name is one label).
    const set = await harness.cli(["vnode", "set", NAME, "--mail-hostname", "mail.netserva.test"]);
    expect(set.code, set.err).toBe(0);
    agent = await startAgentProcess({ ns, home, root, port: PORT, logDir });
  }, 180_000);

  afterAll(async () => {
    await agent?.stop().catch(() => undefined);
    await ns?.destroy();
    await harness?.close();
    if (root) rmSync(root, { recursive: true, force: true });
    if (logDir && !process.env["KEEP_LOGS"]) rmSync(logDir, { recursive: true, force: true });
  });

  it("reports the import (counts, weak hashes, clear-text column) and changes nothing", async () => {
    const row = await until(
      async () => {
        const rows = JSON.parse((await harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
        const r = rows.find((x) => x["vnode"] === NAME);
        return r?.["connected"] === true && r["management"] === "unmanaged" ? r : undefined;
      },
      60_000,
      "the NetServa vnode to report unmanaged",
    );
    expect(String(row["managementReason"])).toContain("NetServa sysadm database");
    const before = tree(root);

    const dry = await harness.cli(["vnode", "adopt", NAME, "--dry-run", "--json"]);
    expect(dry.code, dry.err).toBe(0);
    const report = JSON.parse(dry.out) as {
      layout: string;
      found: { mailboxes: number; domains: number; aliases: number };
      import: Record<string, number>;
      weakHashes: Array<{ address: string; scheme: string }>;
      refusals: unknown[];
      warnings: string[];
      files: Array<{ path: string; exists: boolean }>;
      preview: {
        files: Array<{ path: string; diff: string[] }>;
        writes: string[];
        rows: Record<string, number>;
        unavailable?: string;
      };
    };
    expect(report.layout).toBe("vhosts");
    expect(report.found).toEqual({
      domains: DOMAINS,
      mailboxes: DOMAINS * PER_DOMAIN,
      aliases: fixture.aliases.length,
    });
    expect(report.import).toMatchObject({
      domains: DOMAINS,
      mailboxes: DOMAINS * PER_DOMAIN,
      inactiveMailboxes: 1,
      aliases: fixture.aliases.length,
      catchAlls: 1,
      inactiveAliases: DOMAINS,
    });
    expect(report.weakHashes.map((w) => w.scheme).sort()).toEqual(["MD5-CRYPT", "PLAIN-MD5"]);
    expect(report.refusals).toEqual([]);
    expect(report.warnings.join("\n")).toContain("vmails.clearpw holds clear-text passwords");
    expect(report.files.find((f) => f.path.endsWith("/etc/postfix/main.cf"))?.exists).toBe(true);
    // The switch's diff, rendered by the agent without writing anything (the tree check below).
    expect(report.preview.unavailable).toBeUndefined();
    const mainDiff = report.preview.files.find((f) => f.path.endsWith("/etc/postfix/main.cf"))?.diff ?? [];
    expect(mainDiff).toContain("- # NetServa");
    expect(mainDiff).toContain("+ # Rendered by netserva-mail; edits are overwritten.");
    expect(report.preview.writes.some((w) => w.endsWith("/etc/dovecot/dovecot-sql.conf.ext"))).toBe(true);
    expect(report.preview.rows).toEqual({
      domains: DOMAINS,
      mailboxes: DOMAINS * PER_DOMAIN,
      aliases: fixture.aliases.length,
    });
    // first_valid_uid lets NetServa's per-domain uids (2000 and up) in.
    const dovecotDiff = report.preview.files.find((f) => f.path.endsWith("/etc/dovecot/dovecot.conf"))?.diff ?? [];
    const firstUid = Number(/^\+ first_valid_uid = (\d+)$/m.exec(dovecotDiff.join("\n"))?.[1]);
    expect(firstUid).toBeGreaterThan(0);
    expect(firstUid).toBeLessThanOrEqual(2000);
    // No hash, no password (the fixture's clear-text column included) in either format.
    const table = await harness.cli(["vnode", "adopt", NAME, "--dry-run"]);
    expect(table.code, table.err).toBe(0);
    expect(table.out).toContain(`would import ${DOMAINS} domains`);
    expect(table.out).toContain("+++ ");
    expect(table.out).toContain(`lookup rows: + ${DOMAINS} domains`);
    for (const out of [dry.out, table.out]) {
      expect(out).not.toMatch(/\$[1256]y?\$|\{PLAIN-MD5\}[0-9a-f]|pw-user/);
    }
    // Without --dry-run and without a terminal to ask on: refused until --yes, nothing changed.
    const real = await harness.cli(["vnode", "adopt", NAME]);
    expect(real.code).toBe(2);
    expect(real.err).toContain("pass --yes");
    expect(tree(root)).toEqual(before);
  }, 180_000);
});
