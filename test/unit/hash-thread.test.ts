// serve's password hash thread (common/password/hash-worker.ts): what it hashes is what the
// in-process SHA512-CRYPT makes, many at once stay apart, and a hash asked before the thread has
// loaded or while it stops is made by the caller instead (counted, never timed).
import { afterEach, describe, expect, it } from "vitest";
import { hashPassword, parseSha512Settings, sha512Crypt, verifyPassword } from "../../common/password/index.ts";
import { hashThreadState, startHashThread, stopHashThread } from "../../common/password/hash-worker.ts";

async function untilReady(): Promise<void> {
  for (let i = 0; i < 500 && !hashThreadState().ready; i++) await new Promise((r) => setTimeout(r, 10));
  expect(hashThreadState().ready).toBe(true);
}

/** The hash recomputed here from its own salt: equal means the thread made a true SHA512-CRYPT. */
function sameAsInProcess(stored: string, password: string): void {
  const body = stored.replace(/^\{SHA512-CRYPT\}/, "");
  const settings = parseSha512Settings(body);
  expect(settings).toBeDefined();
  if (settings) expect(sha512Crypt(password, settings)).toBe(body);
}

describe("the password hash thread", () => {
  afterEach(async () => {
    while (hashThreadState().users > 0) await stopHashThread();
  });

  it("hashes on the thread once it has loaded, and the hash is the in-process one", async () => {
    startHashThread();
    await untilReady();
    const before = hashThreadState().hashed;
    const stored = await hashPassword("correct horse battery staple");
    expect(hashThreadState().hashed).toBe(before + 1);
    sameAsInProcess(stored, "correct horse battery staple");
    expect(await verifyPassword("correct horse battery staple", stored)).toBe(true);
    expect(await verifyPassword("wrong", stored)).toBe(false);
  });

  it("keeps many hashes asked at once apart (each its own password and salt)", async () => {
    startHashThread();
    await untilReady();
    const before = hashThreadState().hashed;
    const passwords = Array.from({ length: 12 }, (_, i) => `pw-${i}-${"x".repeat(i * 7)}`);
    const stored = await Promise.all(passwords.map((p) => hashPassword(p)));
    expect(hashThreadState().hashed).toBe(before + passwords.length);
    expect(new Set(stored).size).toBe(passwords.length);
    passwords.forEach((p, i) => sameAsInProcess(stored[i] ?? "", p));
  });

  it("hashes in the caller before the thread has loaded", async () => {
    startHashThread(); // its "loaded" message cannot arrive before the next line
    const before = hashThreadState().hashed;
    const stored = await hashPassword("early");
    expect(hashThreadState().hashed).toBe(before);
    sameAsInProcess(stored, "early");
  });

  it("a hash in flight when the thread stops is made by the caller instead", async () => {
    startHashThread();
    await untilReady();
    const before = hashThreadState().hashed;
    const pending = hashPassword("in flight");
    await stopHashThread(); // terminates the thread with the request unanswered
    const stored = await pending;
    expect(hashThreadState().hashed).toBe(before);
    sameAsInProcess(stored, "in flight");
  });

  it("ends with its last user (two controller daemons in one process)", async () => {
    startHashThread();
    startHashThread();
    await untilReady();
    await stopHashThread();
    expect(hashThreadState().ready).toBe(true); // one user left
    await stopHashThread();
    expect(hashThreadState().ready).toBe(false);
    expect(await hashPassword("after").then((h) => h.startsWith("{SHA512-CRYPT}$6$"))).toBe(true);
  });
});
