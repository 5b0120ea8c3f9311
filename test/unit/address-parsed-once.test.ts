// An address is parsed once where it enters and carried typed from there. On the agent: a change
// or a whole state is checked once at its boundary (rows.ts), and the lookup store, its writer
// and the maildir bookkeeping only take the checked rows. The counter in common/validation counts
// every parse; the type checker (tsc runs over the tests) proves the rest: a raw string is not a
// ParsedAddress, and the store does not take unchecked messages.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DesiredStateSchema, StateChangeSchema, type StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { addressParses, parseAddress, type ParsedAddress } from "../../common/validation/index.ts";
import { openLookupStore, type LookupStore } from "../../agent/lookup/lookup-store.ts";
import { checkChanges, checkState } from "../../agent/lookup/rows.ts";

const HASH = "{SHA512-CRYPT}$6$abcdefgh$" + "x".repeat(86);
const change = (c: Parameters<typeof create<typeof StateChangeSchema>>[1]): StateChange => create(StateChangeSchema, c);
const mailbox = (address: string) =>
  change({ kind: { case: "upsertMailbox", value: { address, passwordHash: HASH, active: true } } });

let dir: string;
let store: LookupStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "parsed-once-"));
  store = openLookupStore({ path: join(dir, "sysadm.db") });
  store.applyChanges(
    checkChanges([
      change({ kind: { case: "upsertDomain", value: { domain: "xn--bcher-kva.example", active: true } } }),
    ]),
  );
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** How many addresses `work` parsed. */
function parses(work: () => void): number {
  const before = addressParses.count;
  work();
  return addressParses.count - before;
}

describe("an address is parsed once", () => {
  it("a ParsedAddress carries both forms: `address` for people, `ascii` as stored", () => {
    const a = parseAddress("Jane@Bücher.Example");
    expect({ address: a.address, ascii: a.ascii, local: a.local }).toEqual({
      address: "jane@bücher.example",
      ascii: "jane@xn--bcher-kva.example",
      local: "jane",
    });
  });

  it("agent changes: one parse per address at the boundary, none in the store or its diff", () => {
    const changes = [
      mailbox("a@xn--bcher-kva.example"),
      mailbox("b@xn--bcher-kva.example"),
      change({ kind: { case: "deleteMailbox", value: "c@xn--bcher-kva.example" } }),
    ];
    let checked: ReturnType<typeof checkChanges> = [];
    expect(parses(() => (checked = checkChanges(changes)))).toBe(3);
    let entries: ReturnType<LookupStore["applyChanges"]>["entries"] = [];
    expect(parses(() => store.applyChanges(checked, { dryRun: true }))).toBe(0);
    expect(parses(() => (entries = store.applyChanges(checked).entries))).toBe(0);
    // What the mail host needs for maildirs travels with the entries, already split.
    expect(entries.filter((e) => e.kind === "mailbox").map((e) => e.mailbox)).toMatchObject([
      { domain: "xn--bcher-kva.example", local: "a", adopted: false },
      { domain: "xn--bcher-kva.example", local: "b", adopted: false },
    ]);
    // A domain's removal takes its mailboxes along without parsing them either.
    const removed = checkChanges([change({ kind: { case: "deleteDomain", value: "xn--bcher-kva.example" } })]);
    expect(parses(() => (entries = store.applyChanges(removed).entries))).toBe(0);
    expect(entries.filter((e) => e.kind === "mailbox").map((e) => [e.key, e.mailbox?.local])).toEqual([
      ["a@xn--bcher-kva.example", "a"],
      ["b@xn--bcher-kva.example", "b"],
    ]);
  });

  it("a whole state: checked once, then planned (dry run) and written without parsing again", () => {
    const state = create(DesiredStateSchema, {
      domains: [{ domain: "xn--bcher-kva.example", active: true }],
      mailboxes: ["x", "y", "z"].map((l) => ({
        address: `${l}@xn--bcher-kva.example`,
        passwordHash: HASH,
        active: true,
      })),
    });
    let rows: ReturnType<typeof checkState> | undefined;
    expect(parses(() => (rows = checkState(state)))).toBe(3);
    if (!rows) throw new Error("unreachable");
    const checked = rows;
    expect(parses(() => store.replaceAll(checked, { dryRun: true }))).toBe(0);
    expect(parses(() => store.replaceAll(checked))).toBe(0);
    expect(checked.mailboxes.map((m) => [m.domain, m.local])).toEqual([
      ["xn--bcher-kva.example", "x"],
      ["xn--bcher-kva.example", "y"],
      ["xn--bcher-kva.example", "z"],
    ]);
  });

  it("the types keep raw strings and unchecked messages out", () => {
    const take = (a: ParsedAddress): string => a.ascii;
    // @ts-expect-error a string is not a ParsedAddress: it must go through parseAddress
    expect(take("a@example.com")).toBeUndefined(); // it would carry no stored form at all
    // @ts-expect-error nor is an object of the same shape made by hand
    const forged: ParsedAddress = {
      address: "a@x.org",
      ascii: "a@x.org",
      local: "a",
      domain: { ascii: "x.org", unicode: "x.org" },
    };
    expect(forged.ascii).toBe("a@x.org");
    // @ts-expect-error the store takes checked changes only (rows.ts checkChanges)
    expect(store.applyChanges([mailbox("a@xn--bcher-kva.example")]).entries).toEqual([]); // nothing it knows
  });
});
