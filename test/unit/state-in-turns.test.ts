// ApplyState's request decoded in two steps (agent/server/state-in-turns.ts): the deserializer
// decodes the envelope and the state's small fields at once, the handler the rows in turns of the
// event loop. The result equals protobuf's own decoding; the rows cost one turn per slice.
import { create, equals, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { ApplyStateRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { decodeApplyStateLater, decodeRowsInTurns } from "../../agent/server/state-in-turns.ts";
import { ROWS_PER_TURN } from "../../agent/lookup/turns.ts";

const HASH = "{SHA512-CRYPT}$6$abcdefgh$" + "x".repeat(86);

function request(mailboxes: number) {
  return create(ApplyStateRequestSchema, {
    meta: { requestId: "r-1", generation: 7n, actor: "test", leaseEpoch: 3n },
    dryRun: true,
    state: create(DesiredStateSchema, {
      generation: 7n,
      settings: { mailHostname: "mail.example.com", listenAddresses: ["10.0.0.1"], rspamdEnabled: true },
      tls: { certificateChainPem: "CHAIN", privateKeyPem: "KEY" },
      domains: [
        { domain: "example.com", active: true },
        { domain: "example.org", active: false },
      ],
      mailboxes: Array.from({ length: mailboxes }, (_, i) => ({
        address: `u${i}@example.com`,
        passwordHash: HASH,
        active: i % 2 === 0,
        quotaBytes: BigInt(i),
      })),
      aliases: [{ source: "info@example.com", targets: ["u0@example.com", "x@remote.org"], active: true }],
      dkimKeys: [{ domain: "example.com", selector: "s1", privateKeyPem: "DKIM" }],
    }),
  });
}

describe("ApplyState decoded in turns", () => {
  it("decodes to what protobuf decodes, the rows one slice per turn", async () => {
    const sent = request(3 * ROWS_PER_TURN);
    const bytes = toBinary(ApplyStateRequestSchema, sent);
    const got = decodeApplyStateLater(bytes);
    // At once: the envelope and the small fields; the rows wait.
    expect(got.meta?.requestId).toBe("r-1");
    expect(got.state?.settings?.mailHostname).toBe("mail.example.com");
    expect(got.state?.mailboxes.length).toBe(0);
    let turns = 0;
    let decoding = true;
    const tick = (): void => {
      if (!decoding) return;
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
    if (!got.state) throw new Error("no state");
    await decodeRowsInTurns(got.state);
    decoding = false;
    expect(turns).toBeGreaterThanOrEqual(3);
    expect(equals(ApplyStateRequestSchema, got, sent)).toBe(true);
    // A second call has nothing left to do.
    await decodeRowsInTurns(got.state);
    expect(got.state.mailboxes.length).toBe(3 * ROWS_PER_TURN);
  });

  it("a request without a state, or with its state in two parts, decodes as protobuf does", () => {
    const bare = create(ApplyStateRequestSchema, { meta: { requestId: "r-2", generation: 1n } });
    expect(equals(ApplyStateRequestSchema, decodeApplyStateLater(toBinary(ApplyStateRequestSchema, bare)), bare)).toBe(
      true,
    );
    // Two state fields are merged (repeated fields concatenated): both parts' rows are kept.
    const a = toBinary(
      DesiredStateSchema,
      create(DesiredStateSchema, { generation: 2n, domains: [{ domain: "a.test" }] }),
    );
    const b = toBinary(DesiredStateSchema, create(DesiredStateSchema, { domains: [{ domain: "b.test" }] }));
    const w = new BinaryWriter();
    w.tag(2, WireType.LengthDelimited).bytes(a);
    w.tag(2, WireType.LengthDelimited).bytes(b);
    const merged = decodeApplyStateLater(w.finish());
    expect(merged.state?.domains.map((d) => d.domain)).toEqual(["a.test", "b.test"]);
    expect(merged.state?.generation).toBe(2n);
  });

  it("a row that is not a valid message is refused naming the row", async () => {
    const w = new BinaryWriter();
    const state = new BinaryWriter();
    state.tag(1, WireType.Varint).uint64(5n);
    state.tag(4, WireType.LengthDelimited).bytes(new Uint8Array([0x0a, 0x05, 0x61])); // a string cut short
    w.tag(2, WireType.LengthDelimited).bytes(state.finish());
    const got = decodeApplyStateLater(w.finish());
    if (!got.state) throw new Error("no state");
    await expect(decodeRowsInTurns(got.state)).rejects.toMatchObject({
      code: "invalid_argument",
      field: "state.mailboxes[0]",
    });
  });
});
