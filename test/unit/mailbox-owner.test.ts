// An adopted mailbox's own home, uid and gid (issue 17): the lookup row carries them as they are
// (and the digest counts them, both sides alike), a derived mailbox's row and digest are what they
// were; the agent refuses a partial or unsafe owner naming the field; maildirs use an adopted home
// where it is without chowning what exists; every hash form an existing vnode stored reaches the
// agent with its scheme prefix and Dovecot verifies it as stored (doveadm pw -t).
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { openLookupStore, type LookupStore } from "../../agent/lookup/lookup-store.ts";
import { checkState } from "../../agent/lookup/rows.ts";
import { createMaildirs } from "../../agent/mail/maildirs.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import { hashMailbox, lookupDigestOf } from "../../common/state/lookup-digest.ts";
import { adoptedHashForm, isStoredHashForm } from "../../common/password/stored-hash-form.ts";

const HASH = "{SHA512-CRYPT}$6$abcdefgh$" + "x".repeat(86);
const state = (mailboxes: Array<Record<string, unknown>>) =>
  create(DesiredStateSchema, {
    domains: [{ domain: "a.test", active: true }],
    mailboxes: mailboxes.map((m) => ({ passwordHash: HASH, active: true, ...m })),
  });

let dir: string;
let path: string;
let store: LookupStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "owner-"));
  path = join(dir, "sysadm.db");
  store = openLookupStore({ path, mailUid: 5000, mailGid: 5000, mailHome: (d, l) => `/r/srv/${d}/msg/${l}` });
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const rows = () => {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return db.prepare("SELECT user, home, uid, gid, own FROM vmails ORDER BY user").all();
  } finally {
    db.close();
  }
};

describe("adopted mailbox owner in the lookup rows", () => {
  it("keeps an adopted home/uid/gid as sent, derives the rest, and both sides agree on the digest", () => {
    const s = state([
      { address: "old@a.test", home: "/home/u2001/var/a.test/msg/old", uid: 2001, gid: 2002 },
      { address: "new@a.test" },
    ]);
    store.replaceAll(checkState(s));
    expect(rows()).toEqual([
      { user: "new@a.test", home: "/r/srv/a.test/msg/new", uid: 5000, gid: 5000, own: 0 },
      { user: "old@a.test", home: "/home/u2001/var/a.test/msg/old", uid: 2001, gid: 2002, own: 1 },
    ]);
    expect(store.digest()).toBe(lookupDigestOf(s));
    expect(store.recomputeDigest()).toBe(store.digest());
    // A derived mailbox hashes exactly as before the owner existed (no digest churn on upgrade).
    const plain = { user: "new@a.test", pass: HASH, active: 1, quota: 0, sieve: "", name: "" };
    expect(hashMailbox({ ...plain, owner: undefined })).toBe(hashMailbox(plain));
  });

  it("a moved home is a change of that row; dropping the owner goes back to the derived values", () => {
    store.replaceAll(checkState(state([{ address: "old@a.test", home: "/h/one", uid: 2001, gid: 2001 }])));
    const moved = store.replaceAll(
      checkState(state([{ address: "old@a.test", home: "/h/two", uid: 2001, gid: 2001 }])),
    );
    expect(moved.diff).toEqual(["~ mailbox old@a.test: home"]);
    const back = store.replaceAll(checkState(state([{ address: "old@a.test" }])));
    expect(back.diff).toEqual(["~ mailbox old@a.test: home, uid, gid, own"]);
    expect(rows()).toEqual([{ user: "old@a.test", home: "/r/srv/a.test/msg/old", uid: 5000, gid: 5000, own: 0 }]);
    expect(store.recomputeDigest()).toBe(store.digest());
  });

  it.each([
    [{ home: "relative/x", uid: 1, gid: 1 }, "mailbox.home"],
    [{ home: "/a/../etc", uid: 1, gid: 1 }, "mailbox.home"],
    [{ home: "/a/b c", uid: 1, gid: 1 }, "mailbox.home"],
    [{ home: "/a/b", uid: 0, gid: 1 }, "mailbox.uid"],
    [{ home: "/a/b", uid: 1, gid: 0 }, "mailbox.gid"],
    [{ uid: 2000, gid: 2000 }, "mailbox.home"],
  ])("refuses owner %j naming %s, before anything is written", (owner, field) => {
    expect(() => checkState(state([{ address: "x@a.test", ...owner }]))).toThrow(field);
    expect(rows()).toEqual([]);
  });
});

describe("adopted maildirs", () => {
  it("uses an existing adopted home as it is and makes what is missing with the mailbox's own owner", () => {
    const root = mkdtempSync(join(tmpdir(), "owner-md-"));
    try {
      const paths = createVnodePaths(root);
      const md = createMaildirs(paths, { name: "vmail", uid: 5000, gid: 5000 });
      const home = join(root, "home/u2001/var/a.test/msg/old");
      mkdirSync(join(home, "Maildir/cur"), { recursive: true });
      chownSync(join(home, "Maildir"), 2001, 2002);
      const own = { home, uid: 2001, gid: 2002 };
      expect(md.ensure("a.test", "old", own)).toBe(true); // new/ and tmp/ were missing
      expect(statSync(join(home, "Maildir/new")).uid).toBe(2001);
      expect(statSync(join(home, "Maildir/tmp")).gid).toBe(2002);
      expect(statSync(join(home, "Maildir")).uid).toBe(2001);
      // Nothing under /srv for it: the adopted home is where its mail lives.
      expect(() => statSync(paths.domainDir("a.test"))).toThrow();
      expect(md.ensure("a.test", "old", own)).toBe(false);
      expect(md.remove("a.test", "old", own)).toBe(true);
      expect(() => statSync(home)).toThrow();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

const hasDoveadm = (() => {
  try {
    execFileSync("doveadm", ["pw", "-l"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("stored hash forms", () => {
  it("refuses a bare crypt string at the agent (Dovecot would have to guess its scheme)", () => {
    expect(isStoredHashForm("$6$abcdefgh$" + "x".repeat(86))).toBe(false);
    expect(isStoredHashForm(HASH)).toBe(true);
    expect(isStoredHashForm("{PLAIN}with space")).toBe(false);
    expect(adoptedHashForm("{NOPE}abc")).toBeUndefined();
    expect(adoptedHashForm("not a hash")).toBeUndefined();
  });

  it.skipIf(!hasDoveadm).each([
    ["SHA512-CRYPT", true],
    ["SHA512-CRYPT", false],
    ["SHA256-CRYPT", true],
    ["SHA256-CRYPT", false],
    ["BLF-CRYPT", true],
    ["MD5-CRYPT", true],
    ["MD5-CRYPT", false],
    ["PLAIN-MD5", true],
    ["SSHA512", true],
    ["PLAIN", true],
  ])("%s (prefix stored: %s) is adopted in a form Dovecot verifies as stored", (scheme, prefixed) => {
    const password = "pw-adopted-Old1";
    let stored = execFileSync("doveadm", ["pw", "-s", scheme, "-p", password], { encoding: "utf8" }).trim();
    if (!prefixed) stored = stored.replace(/^\{[A-Z0-9-]+\}/, "");
    const form = adoptedHashForm(stored);
    expect(form).toBeDefined();
    expect(form?.startsWith(`{${scheme}}`)).toBe(true);
    expect(isStoredHashForm(form ?? "")).toBe(true);
    // The hash itself is untouched: only the prefix is added.
    expect(form?.endsWith(stored.replace(/^\{[A-Z0-9-]+\}/, ""))).toBe(true);
    const ok = execFileSync("doveadm", ["pw", "-t", form ?? "", "-p", password], { encoding: "utf8" });
    expect(ok).toContain("(verified)");
    expect(() =>
      execFileSync("doveadm", ["pw", "-t", form ?? "", "-p", "wrong-password"], { stdio: "pipe" }),
    ).toThrow();
  });
});
