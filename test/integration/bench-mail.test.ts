// scripts/bench-mail at a tiny scale, every mode on: inbound on :25, submission on 587 to the
// plain and the Rspamd stacks (rendered+rspamd and hand+rspamd share one Rspamd), and outbound
// relay — submission for a remote domain that every stack relays by MX (the bench's PowerDNS) to
// smtp-sink in another namespace, DKIM-signed by Rspamd on the two Rspamd stacks (the script
// refuses to go on if Rspamd's log does not show a signature for each warm-up relay). It asserts counts only (every message
// delivered or relayed, none refused), never a rate: the figures are the script's to print.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { pdnsAvailable } from "../helpers/pdns.ts";

const exec = promisify(execFile);
const canRun =
  process.getuid?.() === 0 &&
  pdnsAvailable &&
  ["/usr/sbin/postfix", "/usr/sbin/dovecot", "/usr/sbin/smtp-sink", "/usr/sbin/smtp-source", "/usr/bin/rspamd"].every(
    (f) => existsSync(f),
  );
const MESSAGES = 10;

type Runs = Record<string, Array<{ sent: number; delivered: number; failures: string | null }>>;

const dir = mkdtempSync(join(tmpdir(), "nsm-bench-mail-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!canRun)("scripts/bench-mail at a tiny scale", () => {
  it("delivers every message on :25 and 587 (with and without Rspamd) and relays every one submitted for the remote domain", async () => {
    const json = join(dir, "result.json");
    const args = [
      join(import.meta.dirname, "../../scripts/bench-mail.ts"),
      "--messages",
      String(MESSAGES),
      "--rounds",
      "1",
      "--mailboxes",
      "0",
      "--no-imap",
      "--rspamd",
      "--json",
      json,
    ];
    try {
      await exec(process.execPath, args, { timeout: 900_000, maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
      const e = error as Error & { stderr?: string };
      throw new Error(`bench-mail failed: ${e.message}\n${(e.stderr ?? "").split("\n").slice(-30).join("\n")}`);
    }
    const result = JSON.parse(readFileSync(json, "utf8")) as Record<"inbound" | "submission" | "relay", Runs>;
    const counts = (runs: Runs): Record<string, number[]> =>
      Object.fromEntries(Object.entries(runs).map(([name, rs]) => [name, rs.map((r) => r.delivered)]));
    expect(counts(result.inbound)).toEqual({
      bare: [MESSAGES],
      hand: [MESSAGES],
      rendered: [MESSAGES],
      "rendered+rspamd": [MESSAGES],
      "hand+rspamd": [MESSAGES],
    });
    expect(counts(result.submission)).toEqual({
      hand: [MESSAGES],
      rendered: [MESSAGES],
      "rendered+rspamd": [MESSAGES],
      "hand+rspamd": [MESSAGES],
    });
    expect(counts(result.relay)).toEqual({
      bare: [MESSAGES],
      hand: [MESSAGES],
      rendered: [MESSAGES],
      "rendered+rspamd": [MESSAGES],
      "hand+rspamd": [MESSAGES],
    });
    for (const runs of Object.values(result))
      for (const [name, rs] of Object.entries(runs))
        for (const r of rs) expect(r.failures, `${name}: ${r.failures}`).toBeNull();
  }, 960_000);
});
