// What adoption refuses, with the reason and a fix, and what it imports as it is
// (controller/adopt/adoption-plan.ts).
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ReadInventoryResponseSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { planAdoption } from "../../controller/adopt/adoption-plan.ts";

const HASH = "{SHA512-CRYPT}$6$salt$" + "a".repeat(86);
const box = (address: string, extra: object = {}) => ({
  address,
  passwordHash: HASH,
  scheme: "SHA512-CRYPT",
  weak: false,
  home: `/srv/${address.split("@")[1]}/msg/${address.split("@")[0]}`,
  uid: 1001,
  gid: 1001,
  active: true,
  ...extra,
});

const inventory = () =>
  create(ReadInventoryResponseSchema, {
    domains: [
      { domain: "a.test", uid: 1001, gid: 1001, active: true },
      { domain: "off.test", uid: 1002, gid: 1002, active: false },
    ],
    mailboxes: [
      box("alice@a.test"),
      box("weak@a.test", { passwordHash: "$1$salt$" + "d".repeat(22), scheme: "MD5-CRYPT", weak: true }),
      box("bad address@a.test"),
      box("on@off.test"),
      box("nohash@a.test", { passwordHash: "letmein", scheme: "UNKNOWN", weak: true }),
    ],
    aliases: [
      { source: "@a.test", targets: ["alice@a.test"], active: true },
      { source: "team@a.test", targets: ["alice@a.test", "weak@a.test", "someone@remote.test"], active: true },
      { source: "typo@a.test", targets: ["alcie-nope@off.test"], active: true },
      { source: "x@a.test", targets: ["y@a.test"], active: true },
      { source: "y@a.test", targets: ["x@a.test"], active: true },
      { source: "old@a.test", targets: ["gone@a.test"], active: false },
    ],
  });

describe("adoption plan", () => {
  it("imports what is sound, flags weak hashes, refuses the rest with a reason and a fix", () => {
    const plan = planAdoption(inventory());
    expect(plan.mailboxes.map((m) => m.address)).toEqual(["alice@a.test", "weak@a.test"]);
    expect(plan.weak).toEqual([{ address: "weak@a.test", scheme: "MD5-CRYPT" }]);
    expect(plan.aliases.map((a) => a.source)).toEqual(["@a.test", "team@a.test", "old@a.test"]);
    const refused = Object.fromEntries(plan.refusals.map((r) => [r.subject, r.reason]));
    expect(Object.keys(refused).sort()).toEqual(
      ["bad address@a.test", "nohash@a.test", "on@off.test", "typo@a.test", "x@a.test", "y@a.test"].sort(),
    );
    expect(refused["on@off.test"]).toContain("inactive domain");
    expect(refused["nohash@a.test"]).toContain("not a hash");
    expect(refused["typo@a.test"]).toContain("neither a mailbox nor an alias");
    expect(refused["x@a.test"]).toContain("loop");
    expect(plan.refusals.every((r) => r.fix.length > 0)).toBe(true);
    // Never a hash in the plan's report parts.
    expect(JSON.stringify({ r: plan.refusals, w: plan.weak })).not.toContain("$6$");
  });

  it("--skip leaves refused rows out and the refusal with them", () => {
    const plan = planAdoption(
      inventory(),
      new Set(["bad address@a.test", "nohash@a.test", "on@off.test", "typo@a.test", "x@a.test", "y@a.test"]),
    );
    expect(plan.refusals).toEqual([]);
    expect(plan.aliases.map((a) => a.source)).toEqual(["@a.test", "team@a.test", "old@a.test"]);
  });
});

describe("adoption plan: what the switch would store", () => {
  it("refuses an alias that shadows a mailbox, a hash too costly to verify, a form we do not store", () => {
    const inv = create(ReadInventoryResponseSchema, {
      domains: [{ domain: "a.test", uid: 1001, gid: 1001, active: true }],
      mailboxes: [
        box("alice@a.test"),
        box("slow@a.test", { passwordHash: "$6$rounds=999999999$salt$" + "a".repeat(86) }),
        box("cram@a.test", { passwordHash: "{CRAM-MD5}" + "e".repeat(64), scheme: "CRAM-MD5", weak: true }),
      ],
      aliases: [{ source: "alice@a.test", targets: ["someone@remote.test"], active: true }],
    });
    const plan = planAdoption(inv);
    expect(plan.mailboxes.map((m) => m.address)).toEqual(["alice@a.test"]);
    const refused = Object.fromEntries(plan.refusals.map((r) => [r.subject, r.reason]));
    expect(refused["slow@a.test"]).toContain("rounds=999999999 exceed");
    expect(refused["cram@a.test"]).toContain("not a form the managed vnode stores");
    expect(refused["alice@a.test"]).toContain("may not shadow a mailbox");
    // Skipped, the rest goes through.
    expect(planAdoption(inv, new Set(["slow@a.test", "cram@a.test", "alice@a.test"])).refusals).toEqual([]);
  });
});
