// The new-mailbox warm-up's policy request (agent/mail/mailbox-warmup.ts) against a stand-in for
// Dovecot's quota-status socket: what is sent, what is skipped, and that a missing socket is a
// reported error, never a throw. The real socket is in e2e-mail.test.ts ("a new mailbox is warmed").
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_WARMED, askQuotaStatus, warmNewMailboxes } from "../../agent/mail/mailbox-warmup.ts";

let dir = "";
let socketPath = "";
let server: Server;
const requests: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "nsm-warmup-"));
  socketPath = join(dir, "quota-status");
  server = createServer((socket) => {
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
      if (text.endsWith("\n\n")) {
        requests.push(text);
        socket.end("action=DUNNO\n\n");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe("new mailbox warm-up", () => {
  it("asks as Postfix does at RCPT and reads the answer", async () => {
    requests.length = 0;
    expect(await askQuotaStatus(socketPath, "new@example.test")).toBe("action=DUNNO");
    expect(requests).toHaveLength(1);
    expect(requests[0]).toContain("request=smtpd_access_policy\n");
    expect(requests[0]).toContain("protocol_state=RCPT\n");
    expect(requests[0]).toContain("recipient=new@example.test\n");
  });

  it("asks once per new mailbox, none for a batch bigger than MAX_WARMED, none for a bad address", async () => {
    requests.length = 0;
    const none = (): void => undefined;
    expect(await warmNewMailboxes(socketPath, ["a@example.test", "b@example.test"], none)).toBe(2);
    const batch = Array.from({ length: MAX_WARMED + 1 }, (_, i) => `m${i}@example.test`);
    expect(await warmNewMailboxes(socketPath, batch, none)).toBe(0);
    expect(await warmNewMailboxes(socketPath, ["x@example.test\nrecipient=y@example.test"], none)).toBe(0);
    expect(requests).toHaveLength(2);
  });

  it("reports a socket that is not there, and does not throw", async () => {
    const errors: string[] = [];
    const warmed = await warmNewMailboxes(join(dir, "absent"), ["a@example.test"], (address, error) =>
      errors.push(`${address}: ${error.message}`),
    );
    expect(warmed).toBe(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^a@example\.test: .*ENOENT/);
  });
});
