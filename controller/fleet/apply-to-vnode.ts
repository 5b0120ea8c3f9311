// Bringing one vnode to its desired generation: incremental changes when the agent is exactly one
// step behind, the whole compiled state otherwise (the agent asks for it when bases differ).
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { ApplyChangesRequestSchema, ApplyStateRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { ApplyResponse } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import type { StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { Vnode } from "../db/entities/index.ts";
import { compileDesiredState } from "../compiler/compile-state.ts";
import type { CompileContext } from "../compiler/compile-state.ts";
import type { AgentClient } from "./agent-client.ts";

export interface ApplyToVnodeInput {
  em: SqlEntityManager;
  client: AgentClient;
  vnode: Vnode;
  actor: string;
  compile: CompileContext;
  /** Changes from generation-1 to generation; absent = send the whole state. */
  changes?: { generation: number; list: StateChange[] };
  dryRun?: boolean;
}

export async function sendFullState(input: ApplyToVnodeInput): Promise<ApplyResponse> {
  const state = await compileDesiredState(input.em, input.vnode, input.compile);
  const request = create(ApplyStateRequestSchema, {
    meta: create(CommandMetaSchema, { requestId: randomUUID(), generation: state.generation, actor: input.actor }),
    state,
    dryRun: input.dryRun === true,
  });
  return input.client.call("applyState", request, { timeoutMs: 120_000 });
}

export async function applyToVnode(input: ApplyToVnodeInput): Promise<ApplyResponse> {
  let response: ApplyResponse;
  // A big merged change set (bulk import) is cheaper to send as the whole state.
  if (input.changes && input.changes.list.length <= 5000) {
    const { generation, list } = input.changes;
    const base = input.dryRun ? generation : generation - 1;
    response = await input.client.call(
      "applyChanges",
      create(ApplyChangesRequestSchema, {
        meta: create(CommandMetaSchema, {
          requestId: randomUUID(),
          generation: BigInt(input.dryRun ? generation + 1 : generation),
          actor: input.actor,
        }),
        baseGeneration: BigInt(base),
        changes: list,
        dryRun: input.dryRun === true,
      }),
    );
    if (!response.needsFullState) return recordApplied(input, response);
  }
  response = await sendFullState(input);
  return recordApplied(input, response);
}

async function recordApplied(input: ApplyToVnodeInput, response: ApplyResponse): Promise<ApplyResponse> {
  if (!input.dryRun)
    await input.em
      .fork()
      .nativeUpdate(
        Vnode,
        { id: input.vnode.id, appliedGeneration: { $lt: Number(response.appliedGeneration) } },
        { appliedGeneration: Number(response.appliedGeneration) },
      );
  return response;
}
