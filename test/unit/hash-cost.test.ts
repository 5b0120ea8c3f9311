// Stored password hashes with absurd cost parameters are refused, naming the field: by the
// controller (every hash input path goes through resolvePassword: addvmail/chvmail through the
// service, mail:import through addMany) and again by the agent before a lookup row is written.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { StateChangeSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { hashCostProblem, hashScheme } from "../../common/password/index.ts";
import { checkPasswordHash } from "../../agent/lookup/names.ts";
import { openLookupStore } from "../../agent/lookup/lookup-store.ts";
import { checkChanges } from "../../agent/lookup/rows.ts";
import { resolvePassword } from "../../controller/mail/mailbox-password.ts";

const exec = promisify(execFile);
const SALT = "AAAAAAAAAAAAAAAAAAAAAA";
const TAG = "B".repeat(43);
const sha = (rounds: number, v: "5" | "6" = "6"): string =>
  `{SHA${v === "5" ? "256" : "512"}-CRYPT}$${v}$rounds=${rounds}$saltsalt$${"x".repeat(v === "5" ? 43 : 86)}`;
const bcrypt = (cost: number): string => `{BLF-CRYPT}$2y$${String(cost).padStart(2, "0")}$${"a".repeat(53)}`;
const argon = (m: number, t: number, p: number, kind = "argon2id"): string =>
  `{${kind.toUpperCase()}}$${kind}$v=19$m=${m},t=${t},p=${p}$${SALT}$${TAG}`;

/** The refusal thrown by `f`, or undefined when it did not throw. */
async function refusal(f: () => unknown): Promise<NetservaError | undefined> {
  try {
    await f();
    return undefined;
  } catch (err) {
    if (err instanceof NetservaError) return err;
    throw err;
  }
}

describe("hash cost ceilings", () => {
  it.each([
    ["SHA512-CRYPT rounds", sha(50_000), sha(50_001), /SHA512-CRYPT rounds=50001 exceed the limit of 50,000/],
    ["SHA256-CRYPT rounds", sha(50_000, "5"), sha(999_999_999, "5"), /SHA256-CRYPT rounds=999999999/],
    ["bcrypt cost", bcrypt(13), bcrypt(14), /bcrypt cost 14 exceeds the limit of 13/],
    ["Argon2id memory", argon(262_144, 3, 1), argon(262_145, 3, 1), /Argon2id memory m=262145 KiB exceeds/],
    ["Argon2id passes", argon(65_536, 8, 1), argon(65_536, 9, 1), /Argon2id passes t=9 exceed the limit of 8/],
    ["Argon2id parallelism", argon(65_536, 3, 4), argon(65_536, 3, 5), /Argon2id parallelism p=5 exceeds/],
    ["Argon2i memory", argon(65_536, 3, 1, "argon2i"), argon(1 << 22, 3, 1, "argon2i"), /Argon2i memory/],
  ])("%s: the limit passes, one above is refused", (_name, atLimit, above, reason) => {
    expect(hashCostProblem(atLimit)).toBeUndefined();
    expect(hashCostProblem(above)).toMatch(reason);
    // Without the {SCHEME} prefix (NetServa's bare "$6$…") the same.
    expect(hashCostProblem(above.replace(/^\{[A-Z0-9-]+\}/, ""))).toMatch(reason);
  });

  it("hashes without a cost field (SHA-crypt default 5,000 rounds) and Dovecot's own defaults pass", async () => {
    expect(hashCostProblem(`{SHA512-CRYPT}$6$saltsalt$${"x".repeat(86)}`)).toBeUndefined();
    for (const scheme of ["SHA512-CRYPT", "ARGON2ID"]) {
      const { stdout } = await exec("doveadm", ["-O", "pw", "-s", scheme, "-p", "pw"]);
      expect(hashCostProblem(stdout.trim()), stdout).toBeUndefined();
    }
    // Dovecot writes what the ceiling refuses when asked to: the check reads its real format.
    const { stdout } = await exec("doveadm", ["-O", "pw", "-s", "SHA512-CRYPT", "-r", "60000", "-p", "pw"]);
    expect(hashCostProblem(stdout.trim())).toMatch(/rounds=60000 exceed/);
  });

  it("an Argon2id hash over the ceilings is not a hash the controller stores or verifies", () => {
    expect(hashScheme(argon(65_536, 3, 1))).toBe("ARGON2ID");
    expect(hashScheme(argon(262_145, 3, 1))).toBeUndefined();
    expect(hashScheme(argon(65_536, 3, 5))).toBeUndefined();
  });
});

describe("the controller refuses them (every hash input path: addvmail, chvmail, mail:import)", () => {
  it.each([sha(1_000_000), argon(1_048_576, 3, 1), argon(65_536, 64, 1), argon(65_536, 3, 16), bcrypt(31)])(
    "%s → passwordHash named, with the cost in the reason",
    async (hash) => {
      const err = await refusal(() => resolvePassword({ passwordHash: hash, generate: false }));
      expect(err?.field).toBe("passwordHash");
      expect(err?.message).toMatch(/exceeds? the limit/);
    },
  );

  it("a hash within the limits is stored as given", async () => {
    const hash = sha(20_000);
    expect(await resolvePassword({ passwordHash: hash, generate: false })).toEqual({ hash, generated: undefined });
  });
});

describe("the agent refuses them again before writing the lookup row", () => {
  it("checkPasswordHash names the wire field", async () => {
    for (const hash of [sha(1_000_000), bcrypt(20), argon(1_048_576, 3, 1), argon(65_536, 3, 16, "argon2i")]) {
      const err = await refusal(() => checkPasswordHash(hash, "mailbox.password_hash"));
      expect(err?.field, hash).toBe("mailbox.password_hash");
      expect(err?.message).toMatch(/exceeds? the limit/);
    }
    expect(checkPasswordHash(bcrypt(12), "mailbox.password_hash")).toBe(bcrypt(12));
  });

  it("an ApplyChanges batch with one costly hash writes no row at all", () => {
    const dir = mkdtempSync(join(tmpdir(), "hash-cost-"));
    const store = openLookupStore({
      path: join(dir, "sysadm.db"),
      mailUid: 5000,
      mailGid: 5000,
      mailHome: (d, l) => `/r/srv/${d}/msg/${l}`,
    });
    try {
      const box = (address: string, passwordHash: string) =>
        create(StateChangeSchema, { kind: { case: "upsertMailbox", value: { address, passwordHash, active: true } } });
      store.applyChanges(
        checkChanges([
          create(StateChangeSchema, { kind: { case: "upsertDomain", value: { domain: "x.test", active: true } } }),
        ]),
      );
      const digest = store.digest();
      expect(() =>
        store.applyChanges(checkChanges([box("ok@x.test", sha(5_000)), box("slow@x.test", sha(999_999_999))])),
      ).toThrow(/mailbox\.password_hash: SHA512-CRYPT rounds=999999999 exceed/);
      expect(store.digest()).toBe(digest);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
