// One mail vnode for integration tests: its own network namespace, a private --root, a test CA,
// and a mail host whose daemons run inside the namespace (the direct sc backend prefixes every
// daemon command with `ip netns exec NS`). The test process stays on the host side and talks to
// the namespace's address over the veth pair, like a real client would.
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ImapFlow } from "imapflow";
import { createMailHost, type MailHost, type MailHostOptions } from "../../agent/mail/mail-host.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import { createServiceControl, type ServiceControl } from "../../agent/sc/service-control.ts";
import { createTestNetns, type TestNetns } from "./netns.ts";
import { createTestTls, type TestTls } from "./mail-tls.ts";
import type { SmtpTarget } from "./mail-smtp.ts";

const exec = promisify(execFile);

export const MAIL_HOSTNAME = "mail.vnode.test";

export interface MailVnode {
  readonly ns: TestNetns;
  readonly root: string;
  readonly tls: TestTls;
  readonly sc: ServiceControl;
  readonly host: MailHost;
  smtp(port: 25 | 587 | 465): SmtpTarget;
  imap(user: string, pass: string, opts?: { port?: 993 | 143; secure?: boolean; doSTARTTLS?: boolean }): ImapFlow;
  /** Another mail host over the same root and namespace, e.g. with a broken render option. */
  sibling(extra: Partial<MailHostOptions>): Promise<MailHost>;
  teardown(): Promise<void>;
}

export async function hashPassword(pass: string): Promise<string> {
  const { stdout } = await exec("doveadm", ["-O", "pw", "-s", "SHA512-CRYPT", "-p", pass]);
  return stdout.trim();
}

/** `extra` adds mail host options, e.g. `filter` for a vnode that runs Rspamd and clamd. */
export async function createMailVnode(tag: string, extra: Partial<MailHostOptions> = {}): Promise<MailVnode> {
  const ns = await createTestNetns(tag);
  const root = mkdtempSync(join(tmpdir(), `mail-${tag}-`));
  // mkdtemp makes 0700; the vmail and postfix users must traverse the root.
  chmodSync(root, 0o755);
  const tls = await createTestTls(MAIL_HOSTNAME, ns.nsAddress);
  const sc = createServiceControl({ kind: "direct", paths: createVnodePaths(root), wrap: ns.wrap });
  const base: MailHostOptions = { root, sc, listen: [ns.nsAddress], wrap: ns.wrap, authPenalty: false, ...extra };
  const host = await createMailHost(base);
  const opened: MailHost[] = [host];
  return {
    ns,
    root,
    tls,
    sc,
    host,
    smtp: (port) => ({ host: ns.nsAddress, port, ca: tls.caPem, servername: MAIL_HOSTNAME, implicitTls: port === 465 }),
    imap: (user, pass, o = {}) =>
      new ImapFlow({
        host: ns.nsAddress,
        port: o.port ?? 993,
        secure: o.secure ?? true,
        ...(o.doSTARTTLS === undefined ? {} : { doSTARTTLS: o.doSTARTTLS }),
        auth: { user, pass },
        tls: { ca: tls.caPem, servername: MAIL_HOSTNAME },
        logger: false,
        verifyOnly: false,
      }),
    async sibling(extra) {
      const h = await createMailHost({ ...base, ...extra });
      opened.push(h);
      return h;
    },
    async teardown() {
      await host.stop().catch(() => undefined);
      for (const h of opened) h.close();
      // Anything still alive in the namespace was started by this test: end it by PID.
      for (const pid of await ns.pids()) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
      await ns.destroy();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
