// Regression (issue 14): under load, mail:import's closing whole-state push of 100,000 mailboxes
// was answered "Connection dropped" while the agent went on to apply it. Traced with
// GRPC_TRACE=keepalive: the agent decoded, checked and rehearsed the rows in one synchronous run
// (36 s under load), so the controller's keepalive ping went unanswered past its timeout and the
// controller closed the connection. Now the agent does that work in turns of its event loop.
//
// A real agent process (real Postfix and Dovecot in a namespace) and a client with the
// controller's certificate whose keepalive is tighter than the production one (a ping every
// 200 ms, dropped unanswered after 1 s), so the agent's event loop must keep turning during the
// whole apply: done at once, these rows hold it for well over a second even on a quiet machine.
// Counted: the push is answered (not dropped), and every row is there.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ChannelCredentials, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ApplyResponseSchema,
  ApplyStateRequestSchema,
  type ApplyResponse,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { MailboxSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { compileDesiredState } from "../../controller/compiler/compile-state.ts";
import { Vnode } from "../../controller/db/entities/index.ts";
import { homePaths } from "../../controller/home/home-paths.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import { DatabaseSync } from "node:sqlite";
import { AGENT_PORT, startMailFleet, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";

const isRoot = process.getuid?.() === 0;
const MAILBOXES = 100_000;
const HASH = "{SHA512-CRYPT}$6$abcdefgh$" + "x".repeat(86);

let fleet: MailFleet;
let v: FleetVnode;

/** ApplyState over a connection with the given keepalive; the request goes as bytes encoded
 *  beforehand, so this process stays idle while the agent works (its own timers stay on time). */
function applyStateBytes(bytes: Buffer, keepalive: { timeMs: number; timeoutMs: number }): Promise<ApplyResponse> {
  const controller = homePaths(fleet.harness.home);
  const Client = makeGenericClientConstructor(
    {
      applyState: {
        path: "/netserva.mail.v1.AgentService/ApplyState",
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    "AgentService",
  );
  const client = new Client(
    `${v.ns.nsAddress}:${AGENT_PORT}`,
    ChannelCredentials.createSsl(
      readFileSync(controller.caCert),
      readFileSync(controller.key),
      readFileSync(controller.cert),
    ),
    {
      "grpc.ssl_target_name_override": v.name,
      "grpc.default_authority": v.name,
      "grpc.max_send_message_length": 64 * 1024 * 1024,
      "grpc.keepalive_time_ms": keepalive.timeMs,
      "grpc.keepalive_timeout_ms": keepalive.timeoutMs,
      "grpc.keepalive_permit_without_calls": 1,
    },
  );
  return new Promise<ApplyResponse>((resolve, reject) => {
    const call = client["applyState"] as (
      req: Buffer,
      opts: object,
      cb: (e: ServiceError | null, r?: Buffer) => void,
    ) => void;
    call.call(client, bytes, { deadline: new Date(Date.now() + 600_000) }, (error, response) => {
      client.close();
      if (error || !response) reject(error ?? new Error("no response"));
      else resolve(fromBinary(ApplyResponseSchema, response));
    });
  });
}

function mailboxRows(): number {
  const db = new DatabaseSync(createVnodePaths(v.root).lookupDb, { readOnly: true });
  try {
    db.exec("PRAGMA busy_timeout=5000");
    return Number((db.prepare("SELECT count(*) AS n FROM vmails").get() as { n: number }).n);
  } finally {
    db.close();
  }
}

describe.skipIf(!isRoot)("a large whole state under a tight keepalive", () => {
  beforeAll(async () => {
    fleet = await startMailFleet(["vnka"], "ka");
    const first = fleet.vnodes[0];
    if (!first) throw new Error("no vnode");
    v = first;
  }, 180_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it(`a push of ${MAILBOXES.toLocaleString("en")} mailboxes is answered, not dropped, and every row is written`, async () => {
    const em = fleet.harness.db.em().fork();
    const vnode = await em.findOneOrFail(Vnode, { name: v.name });
    // The vnode's own state (the same generation again: a repair, applied) plus the bulk rows.
    const state = await compileDesiredState(em, vnode);
    const before = state.mailboxes.length;
    for (let i = 0; i < MAILBOXES; i++)
      state.mailboxes.push(
        create(MailboxSchema, { address: `bulk${i}@${v.domain}`, passwordHash: HASH, active: true }),
      );
    const bytes = Buffer.from(
      toBinary(
        ApplyStateRequestSchema,
        create(ApplyStateRequestSchema, {
          meta: { requestId: randomUUID(), generation: state.generation, actor: "test" },
          state,
        }),
      ),
    );
    const outcome = await applyStateBytes(bytes, { timeMs: 200, timeoutMs: 1000 }).then(
      (response) => ({ answered: 1, dropped: 0, response }),
      (error: unknown) => ({ answered: 0, dropped: 1, error: String(error) }),
    );
    expect(outcome).toMatchObject({ answered: 1, dropped: 0 });
    expect("response" in outcome && outcome.response.appliedGeneration).toBe(state.generation);
    expect(mailboxRows()).toBeGreaterThanOrEqual(before + MAILBOXES);
  }, 600_000);
});
