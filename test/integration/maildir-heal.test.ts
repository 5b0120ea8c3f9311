// Issue 14: after a whole state, the background maildir heal makes nothing for a mailbox that
// has no home yet; Dovecot makes it at the first delivery. Real Postfix + Dovecot on a vnode of
// its own (a whole state of hundreds of rows; kept apart from mail-vnode.test.ts's vnode).
// Work is counted (heal passes, mailboxes visited, homes looked at, directories made), never timed.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { clone, create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DesiredStateSchema, MailboxSchema, type DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { maildirWork } from "../../agent/mail/maildirs.ts";
import { waitUntil } from "../../agent/process.ts";
import { buildMessage, sendMail } from "../helpers/mail-smtp.ts";
import { MAIL_HOSTNAME, createMailVnode, hashPassword, type MailVnode } from "../helpers/mail-vnode.ts";

const canRun = process.getuid?.() === 0 && existsSync("/usr/sbin/postfix") && existsSync("/usr/sbin/dovecot");
const D = "heal.test";
const BULK = 300;

let v: MailVnode;
let state: DesiredState;

describe.skipIf(!canRun)("maildir heal after a whole state", () => {
  beforeAll(async () => {
    v = await createMailVnode("heal");
    state = create(DesiredStateSchema, {
      generation: 1n,
      settings: { mailHostname: MAIL_HOSTNAME, listenAddresses: [] },
      tls: { certificateChainPem: v.tls.certChainPem, privateKeyPem: v.tls.keyPem },
      domains: [{ domain: D, active: true }],
      mailboxes: [{ address: `alice@${D}`, passwordHash: await hashPassword("alice-Secret-1"), active: true }],
    });
    await v.host.applyState(state);
    await v.host.start();
    await v.host.healDone();
  });

  afterAll(async () => {
    await v?.teardown();
  });

  it("leaves new mailboxes' maildirs to Dovecot: one heal pass, nothing made; the first delivery makes it", async () => {
    const hash = state.mailboxes[0]?.passwordHash ?? "";
    const bulk = clone(DesiredStateSchema, state);
    bulk.generation += 1n;
    for (let i = 0; i < BULK; i++)
      bulk.mailboxes.push(create(MailboxSchema, { address: `bulk${i}@${D}`, passwordHash: hash, active: true }));
    const before = { ...maildirWork };
    await v.host.applyState(bulk);
    await v.host.healDone();
    // One pass over the state's mailboxes, the domain's homes read once, not one home looked at
    // and not one directory made (it was five per mailbox: half a million mkdir calls after a
    // 100,000-mailbox import).
    expect(maildirWork.healPasses - before.healPasses).toBe(1);
    expect(maildirWork.mailboxesVisited - before.mailboxesVisited).toBe(BULK + 1);
    expect(maildirWork.homeListings - before.homeListings).toBe(1);
    expect(maildirWork.homesLooked - before.homesLooked).toBe(0); // alice has had no mail yet
    expect(maildirWork.dirsMade - before.dirsMade).toBe(0);
    const home = (i: number): string => v.host.paths.mailHome(D, `bulk${i}`);
    expect(readdirSync(join(v.host.paths.domainDir(D), "msg"))).toEqual([]);

    const msg = buildMessage({ from: "sender@remote.test", to: `bulk7@${D}`, subject: "first", body: "Hi\r\n" });
    const out = await sendMail({ ...v.smtp(25), from: "sender@remote.test", to: [`bulk7@${D}`], data: msg.data });
    expect(out.stage).toBe("done");
    const newDir = join(home(7), "Maildir", "new");
    await waitUntil("bulk7's first message", 10_000, () => existsSync(newDir) && readdirSync(newDir).length === 1);
    expect(statSync(home(7)).mode & 0o777).toBe(0o700);
    expect(statSync(home(7)).uid).toBe(statSync(join(v.host.paths.domainDir(D), "msg")).uid);

    // The same state again (a reconnect, a settings change): one more pass that only looks at
    // the one home Dovecot made, and makes nothing.
    const again = { ...maildirWork };
    bulk.generation += 1n;
    await v.host.applyState(bulk);
    await v.host.healDone();
    expect(maildirWork.healPasses - again.healPasses).toBe(1);
    expect(maildirWork.homesLooked - again.homesLooked).toBe(1);
    expect(maildirWork.dirsMade - again.dirsMade).toBe(0);
    expect(readdirSync(join(v.host.paths.domainDir(D), "msg"))).toEqual(["bulk7"]);
  });
});
