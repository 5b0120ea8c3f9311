// Mail deferred while Dovecot was down is flushed when the agent brings the daemons back after a
// switch (adoption's rollback), instead of waiting for Postfix's backoff (300 s by default). Real
// Postfix and Dovecot (NetServa's configuration, test/helpers/netserva-daemons.ts) in a namespace:
// Dovecot stopped, a message accepted and deferred at LMTP, Dovecot started, then the flush. The
// wait for delivery is far under the backoff, so without the flush this test fails.
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../common/log.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import { flushDeferredMail } from "../../agent/postfix/flush-queue.ts";
import { socketAnswers } from "../../agent/process.ts";
import { until } from "../helpers/mail-fleet.ts";
import { submitOnce } from "../helpers/mail-stream.ts";
import { createTestNetns, type TestNetns } from "../helpers/netns.ts";
import { writeNetservaFixture, type NetservaFixture } from "../helpers/netserva-fixture.ts";
import { seedMaildirs, startNetservaDaemons, writeNetservaDaemons } from "../helpers/netserva-daemons.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");

describe.skipIf(!canRun)("deferred mail after the daemons come back", () => {
  let ns: TestNetns;
  let root: string;
  let fixture: NetservaFixture;

  beforeAll(async () => {
    ns = await createTestNetns("pflush");
    root = mkdtempSync(join(tmpdir(), "nsm-pflush-root-"));
    chmodSync(root, 0o755);
    fixture = writeNetservaFixture(root, { domains: 1, perDomain: 4 });
    await writeNetservaDaemons(root, fixture, ns.nsAddress);
    seedMaildirs(fixture);
    await startNetservaDaemons(ns, root);
  }, 120_000);

  afterAll(async () => {
    await ns?.destroy();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const delivered = (home: string, id: string): boolean =>
    ["new", "cur"].some((sub) =>
      readdirSync(join(home, "Maildir", sub)).some((f) =>
        readFileSync(join(home, "Maildir", sub, f), "latin1").includes(id),
      ),
    );

  it("flushes what was deferred at LMTP once Dovecot is back, and reports a stopped Postfix without throwing", async () => {
    const p = createVnodePaths(root);
    // The catch-all's target: NetServa's catch-all (@ns0.test) takes every address of its domain.
    const box = fixture.mailboxes.find((m) => m.address === "user2@ns0.test");
    if (!box) throw new Error("fixture without user2@ns0.test");
    await ns.run("doveadm", ["-c", p.dovecotConf, "stop"]);

    const id = `<flush-${Date.now()}@sender.test>`;
    const data = `From: someone@sender.test\r\nTo: ${box.address}\r\nSubject: deferred\r\nMessage-ID: ${id}\r\n\r\nheld while Dovecot was down\r\n`;
    const sent = await submitOnce({ host: ns.nsAddress, port: 25 }, "someone@sender.test", box.address, data);
    expect(sent.kind).toBe("accepted");
    await until(
      async () => (readFileSync(p.postfixLog, "utf8").includes("status=deferred") ? true : undefined),
      30_000,
      "Postfix to defer the message at LMTP",
    );

    await ns.run("dovecot", ["-c", p.dovecotConf]);
    await until(async () => ((await socketAnswers(p.dovecotLmtpSocket, "220")) ? true : undefined), 30_000, "LMTP");
    const warned: string[] = [];
    const log = createLogger({ level: "warn", write: (line) => void warned.push(line) });
    expect(await flushDeferredMail(p.postfixDir, { log, wrap: ns.wrap }), warned.join("\n")).toBe(true);
    // Far under minimal_backoff_time (300 s): only the flush delivers it in this time.
    await until(
      async () => (delivered(box.home, id) ? true : undefined),
      60_000,
      "the deferred message delivered",
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; Postfix said:\n${readFileSync(p.postfixLog, "utf8").slice(-4000)}`);
    });

    await ns.run("postfix", ["-c", p.postfixDir, "stop"]);
    warned.length = 0;
    expect(await flushDeferredMail(p.postfixDir, { log, wrap: ns.wrap })).toBe(false);
    expect(warned.map((w) => (JSON.parse(w) as { msg: string }).msg)).toEqual([
      "postqueue -f failed: deferred mail waits for its retry",
    ]);
  }, 180_000);
});
