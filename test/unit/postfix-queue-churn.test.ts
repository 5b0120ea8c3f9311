import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { withoutQueueChurn } from "../../agent/postfix/queue-churn.ts";

describe("postfix check under a moving queue", () => {
  const queue = mkdtempSync(join(tmpdir(), "nsm-queue-"));
  mkdirSync(join(queue, "incoming"));
  const stays = join(queue, "incoming", "7CB7E218D44");
  writeFileSync(stays, "");
  const gone = join(queue, "incoming", "7CB7E218D43");
  afterAll(() => rmSync(queue, { recursive: true, force: true }));

  it("drops find's complaint and the ownership warning about a queue file that was delivered meanwhile", () => {
    const said = [
      `find: '${gone}': No such file or directory`,
      `Dec 07 23:33:54 mx postfix/postfix-script[8438]: warning: not owned by postfix: ${gone}`,
    ].join("\n");
    expect(withoutQueueChurn(said, queue)).toBe("");
    expect(withoutQueueChurn(said, `${queue}/`)).toBe("");
  });

  it("keeps a misowned file that is still there, and every other complaint", () => {
    const kept = [
      `postfix/postfix-script: warning: not owned by postfix: ${stays}`,
      "postconf: warning: /etc/postfix/main.cf: unused parameter: smtpd_bogus=1",
      `find: '${gone}': Permission denied`,
    ];
    const said = [`find: '${gone}': No such file or directory`, ...kept].join("\n");
    expect(withoutQueueChurn(said, queue).split("\n")).toEqual(kept);
  });

  it("keeps a vanished path outside the queue directory (not the queue moving)", () => {
    const line = `find: '/etc/postfix/missing': No such file or directory`;
    expect(withoutQueueChurn(line, queue)).toBe(line);
    // A sibling whose name merely starts with the queue's is outside it.
    const sibling = `find: '${queue}x/incoming/1': No such file or directory`;
    expect(withoutQueueChurn(sibling, queue)).toBe(sibling);
  });
});
