// Production mode on a booted Debian 12 with systemd as PID 1 (systemd-nspawn --boot, in a network
// namespace of the test): the stock postfix, dovecot, rspamd and clamav-daemon packages, the
// packages scripts/package builds, the agent enrolled against a controller on the host and run by
// netserva-mail-agent.service (`serve --mail`, sc() = systemctl on the stock units). Real mail in
// over SMTP and out over IMAPS, a config change reloaded through systemd, the agent restarted by
// systemd after kill -9, no EROFS/EACCES under the shipped sandbox, and dpkg -i/-r/-P clean for both packages (stock files back on removal, the
// controller's CA and database never deleted by a purge).
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ImapFlow } from "imapflow";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootSystem, fileListing, type BootedSystem } from "../helpers/booted-system.ts";
import {
  buildPackages,
  copyIn,
  deliverAndFind,
  forwardToController,
  readCa,
  sendInbound,
  waitApplied,
  type MailTarget,
  type Packages,
} from "../helpers/booted-vnode.ts";
import { startHarness, type Harness } from "../helpers/controller-harness.ts";
import { gtubeMessage } from "../helpers/filter-messages.ts";

// The long run only (LONG=1 scripts/test): booting a root and installing packages takes minutes.
const canRun =
  process.env["NETSERVA_TEST_LONG"] === "1" &&
  process.getuid?.() === 0 &&
  existsSync("/usr/bin/mmdebstrap") &&
  existsSync("/usr/bin/systemd-nspawn");
const D = "boot.test";
const HOST = `mail.${D}`;
const PASS = "alice-Secret-pass-1";
const AGENT_UNIT = "netserva-mail-agent.service";

let sys: BootedSystem;
let h: Harness;
let pkgs: Packages;
let forward: { address: string; close(): Promise<void> } | undefined;
let agentDeb = "";
let controllerDeb = "";
let t: MailTarget;
let stockMainCf = "";
const sha = (path: string): string => createHash("sha256").update(readFileSync(path)).digest("hex");
const mainCf = (): string => join(sys.root, "etc/postfix/main.cf");

async function mainPid(): Promise<number> {
  return Number((await sys.ok(["systemctl", "show", "-p", "MainPID", "--value", AGENT_UNIT])).trim());
}

// In order (opted out of the suite's shuffle): one installed system's life, install → enroll →
// change → restart → remove; each step needs the one before.
describe.skipIf(!canRun)(
  "booted Debian 12 with systemd: packages, units, enrolled agent, real mail",
  { shuffle: false },
  () => {
    beforeAll(async () => {
      [sys, h, pkgs] = await Promise.all([
        bootSystem("systemd", "bootsd"),
        startHarness({ healthIntervalMs: 1000 }),
        buildPackages(),
      ]);
      agentDeb = copyIn(sys, pkgs.agent);
      controllerDeb = copyIn(sys, pkgs.controller);
      stockMainCf = sha(mainCf());
      t = { sys, ca: readCa(h), hostname: HOST };
    }, 1_800_000);

    afterAll(async () => {
      await forward?.close();
      await sys?.stop();
      await h?.close();
      pkgs?.remove();
    });

    it("installs and purges the agent package leaving the file system as it was", async () => {
      const before = await fileListing(sys);
      await sys.ok(["dpkg", "-i", agentDeb]);
      expect(await sys.ok(["systemd-analyze", "verify", AGENT_UNIT])).toBe("");
      expect((await sys.run(["systemctl", "is-enabled", AGENT_UNIT])).stdout.trim()).toBe("enabled");
      // The agent package carries the agent's modules only: no controller code, no database library.
      const files = await sys.ok(["dpkg", "-L", "netserva-mail-agent"]);
      expect(files).toMatch(/\/app\/agent\/agent-daemon\.ts$/m);
      expect(files).not.toMatch(/\/app\/controller\/|@mikro-orm|pglite|\/node_modules\/pg\//);
      await sys.ok(["dpkg", "-r", "netserva-mail-agent"]);
      await sys.ok(["dpkg", "-P", "netserva-mail-agent"]);
      expect(await fileListing(sys)).toEqual(before);
      expect(sha(mainCf())).toBe(stockMainCf);
    }, 300_000);

    it("enrolls with the host's controller and serves mail through the stock units", async () => {
      await sys.ok(["dpkg", "-i", agentDeb]);
      forward = await forwardToController(sys.ns.hostAddress, h.controllerAddress);
      const added = await h.cli(["vnode", "add", "vn1", "--address", `${sys.ns.nsAddress}:7444`]);
      expect(added.code, added.err).toBe(0);
      const token = added.out.trim().split("\n").pop() ?? "";
      await sys.ok([
        "netserva-mail-agent",
        "enroll",
        "--controller",
        forward.address,
        "--token",
        token,
        "--home",
        "/var/lib/netserva-mail-agent",
      ]);
      await sys.ok([
        "sh",
        "-c",
        `printf 'NETSERVA_AGENT_ARGS="--listen=${sys.ns.nsAddress}:7444 --mail-listen=${sys.ns.nsAddress} --filter-offline --clamav-test-signatures --no-auth-penalty"\\n' > /etc/netserva-mail/agent.env`,
      ]);
      await sys.ok(["systemctl", "enable", "--now", AGENT_UNIT]);
      expect(
        (await h.cli(["vnode", "set", "vn1", "--mail-hostname", HOST, "--mail-listen", sys.ns.nsAddress])).code,
      ).toBe(0);
      await waitApplied(h, "vn1");
      expect((await h.cli(["addvmaildomain", "vn1", D, "--skip-dns-check"])).code).toBe(0);
      expect((await h.cli(["addvmail", "vn1", `alice@${D}`, "--password-stdin"], `${PASS}\n`)).code).toBe(0);
      await waitApplied(h, "vn1");
      // The agent took over the stock files, kept aside once at install.
      expect(sha(mainCf())).not.toBe(stockMainCf);
      expect(await sys.ok(["tar", "-tf", "/var/lib/netserva-mail-agent/stock/files.tar"])).toMatch(
        /^etc\/postfix\/main\.cf$/m,
      );
      // The stock units run the daemons.
      for (const unit of ["postfix@-.service", "dovecot.service"])
        expect((await sys.run(["systemctl", "is-active", unit])).stdout.trim()).toBe("active");

      await deliverAndFind(t, "alice", D, "first over SMTP");
      const imap = new ImapFlow({
        host: sys.ns.nsAddress,
        port: 993,
        secure: true,
        auth: { user: `alice@${D}`, pass: PASS },
        tls: { ca: t.ca, servername: HOST },
        logger: false,
      });
      await imap.connect();
      const box = await imap.mailboxOpen("INBOX");
      expect(box.exists).toBeGreaterThanOrEqual(1);
      await imap.logout();
    }, 600_000);

    it("applies a config change through systemd: Rspamd on via the stock unit, Postfix reloaded, GTUBE refused", async () => {
      expect((await h.cli(["vnode", "set", "vn1", "--rspamd", "1"])).code).toBe(0);
      await waitApplied(h, "vn1", 180_000);
      expect((await sys.run(["systemctl", "is-active", "rspamd.service"])).stdout.trim()).toBe("active");
      const journal = await sys.ok(["journalctl", "--no-pager", "-o", "cat", "-u", "postfix@-.service"]);
      expect(journal).toMatch(/Reload/);
      const spam = await sendInbound(t, `alice@${D}`, gtubeMessage({ from: "carol@remote.test", to: `alice@${D}` }));
      expect(spam.reply.code).toBe(554);
      await deliverAndFind(t, "alice", D, "after the reload");
    }, 300_000);

    it("is restarted by systemd after kill -9, and the sandbox refused none of its writes", async () => {
      const before = await mainPid();
      expect(before).toBeGreaterThan(0);
      await sys.ok(["kill", "-9", String(before)]);
      const deadline = Date.now() + 60_000;
      let after = 0;
      while (Date.now() < deadline) {
        after = await mainPid();
        const active = (await sys.run(["systemctl", "is-active", AGENT_UNIT])).stdout.trim();
        if (after > 0 && after !== before && active === "active") break;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(after).not.toBe(before);
      expect(after).toBeGreaterThan(0);
      await waitApplied(h, "vn1");
      // Every write path above ran under the shipped unit (ProtectSystem=strict + ReadWritePaths).
      const journal = await sys.ok(["journalctl", "--no-pager", "-o", "cat", "-u", AGENT_UNIT]);
      expect(journal).not.toMatch(/EROFS|EACCES|read-only file system|permission denied/i);
      expect(journal).toMatch(/agent serving/);
    }, 180_000);

    it("removing the agent package puts the stock files back; the controller package never purges its CA", async () => {
      await sys.ok(["dpkg", "-r", "netserva-mail-agent"]);
      expect(sha(mainCf())).toBe(stockMainCf);
      expect(existsSync(join(sys.root, "etc/postfix/sqlite-virtual-domains.cf"))).toBe(false);

      const before = await fileListing(sys);
      await sys.ok(["dpkg", "-i", controllerDeb]);
      expect(await sys.ok(["systemd-analyze", "verify", "netserva-mail.service"])).toBe("");
      await sys.ok(["netserva-mail", "init", "--listen", "127.0.0.1:7443"]);
      await sys.ok(["systemctl", "start", "netserva-mail.service"]);
      const deadline = Date.now() + 60_000;
      let status = await sys.run(["netserva-mail", "status", "--json"]);
      while (status.code !== 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        status = await sys.run(["netserva-mail", "status", "--json"]);
      }
      expect(status.code, status.stderr).toBe(0);
      expect((await sys.run(["systemctl", "is-active", "netserva-mail.service"])).stdout.trim()).toBe("active");
      const purge = await sys.run(["dpkg", "-P", "netserva-mail"]);
      expect(purge.code).toBe(0);
      expect(purge.stderr).toMatch(/kept \/var\/lib\/netserva-mail-controller/);
      expect(existsSync(join(sys.root, "var/lib/netserva-mail-controller/ca/ca.key"))).toBe(true);
      // Everything else is gone: the listing differs by the kept home only.
      const after = (await fileListing(sys)).filter((p) => !p.startsWith("/var/lib/netserva-mail-controller"));
      expect(after).toEqual(before);
    }, 300_000);
  },
);
