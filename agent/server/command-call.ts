// Every agent RPC goes the same way: authorise the peer → validate the command envelope →
// answer a repeated request id from the record → handle → record, count, log → map errors.
import { Metadata } from "@grpc/grpc-js";
import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import type { CommandMeta } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { NetservaError, invalid } from "../../common/errors.ts";
import type { PeerIdentity } from "../../common/identity/peer.ts";
import type { Logger } from "../../common/log.ts";
import { FIELD_METADATA_KEY, grpcStatusOf } from "../../common/rpc/status.ts";
import type { AgentMetrics } from "../metrics/agent-metrics.ts";
import { authorizeController } from "./authorize.ts";
import type { RequestRecord } from "./request-record.ts";
import type { Revocations } from "./revocations.ts";
import type { LeaseFence } from "./lease-fence.ts";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

export interface CommandDeps {
  revocations: Revocations;
  record: RequestRecord;
  metrics: AgentMetrics;
  log: Logger;
  /** Refuses commands from a controller whose lease epoch is older than one already seen. */
  fence?: LeaseFence;
}

export interface CommandContext {
  peer: PeerIdentity;
  requestId: string;
  generation: bigint;
  log: Logger;
}

export interface CommandSpec<Req, Res> {
  name: string;
  /** Commands need an envelope; plain queries (GetInfo) may omit it. */
  metaRequired: boolean;
  handle(request: Req, context: CommandContext): Promise<Res>;
  /** How a recorded response is marked when it answers a retry. */
  replayed?(response: Res): Res;
}

export function validateMeta(
  meta: CommandMeta | undefined,
  required: boolean,
): { requestId: string; generation: bigint; leaseEpoch: bigint } {
  if (!meta) {
    if (required) throw invalid("meta", "missing command envelope (request_id, generation)");
    return { requestId: "", generation: 0n, leaseEpoch: 0n };
  }
  if (!REQUEST_ID.test(meta.requestId)) {
    throw invalid("meta.request_id", "must be 1..64 characters of letters, digits and . _ : -");
  }
  return { requestId: meta.requestId, generation: meta.generation, leaseEpoch: meta.leaseEpoch };
}

export function errorToGrpc(error: NetservaError): { code: number; details: string; metadata: Metadata } {
  const metadata = new Metadata();
  if (error.field) metadata.set(FIELD_METADATA_KEY, error.field);
  return { code: grpcStatusOf(error), details: error.message, metadata };
}

// A refused state (a checker said no: failed_precondition) counts as refused, not as an agent error:
// netserva_agent_commands_total{command="ApplyState",result="refused"} is the refusal metric.
const REFUSED = new Set(["unauthenticated", "permission_denied", "invalid_argument", "failed_precondition"]);

export function unaryCommand<Req extends { meta?: CommandMeta }, Res>(deps: CommandDeps, spec: CommandSpec<Req, Res>) {
  // Written without per-call closures or an async wrapper: this is the agent's hot path.
  const done = (started: number, result: "ok" | "error" | "replayed" | "refused"): void => {
    deps.metrics.commandDone(spec.name, result, (performance.now() - started) / 1000);
  };
  const fail = (started: number, requestId: string, reason: unknown, callback: sendUnaryData<Res>): void => {
    const error = NetservaError.from(reason);
    done(started, REFUSED.has(error.code) ? "refused" : "error");
    deps.log.warn("command failed", {
      command: spec.name,
      request_id: requestId,
      code: error.code,
      field: error.field,
      error: error.message,
    });
    callback(errorToGrpc(error));
  };
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    const started = performance.now();
    let requestId = "";
    try {
      const peer = authorizeController(call, deps.revocations);
      const meta = validateMeta(call.request.meta, spec.metaRequired);
      requestId = meta.requestId;
      // Before the replay record too: a deposed controller gets no answer at all.
      deps.fence?.admit(meta.leaseEpoch);
      const recorded = requestId ? deps.record.get(requestId) : undefined;
      if (recorded) {
        if (recorded.method !== spec.name) throw invalid("meta.request_id", `already used for ${recorded.method}`);
        const response = recorded.response as Res;
        done(started, "replayed");
        callback(null, spec.replayed ? spec.replayed(response) : response);
        return;
      }
      let log: Logger | undefined;
      const id = requestId;
      const context: CommandContext = {
        peer,
        requestId: id,
        generation: meta.generation,
        // Built only when a handler logs: most calls never do.
        get log() {
          return (log ??= deps.log.child({ request_id: id, peer: peer.identity }));
        },
      };
      spec.handle(call.request, context).then(
        (response) => {
          if (id) deps.record.set(id, { method: spec.name, response });
          done(started, "ok");
          callback(null, response);
        },
        (reason: unknown) => fail(started, id, reason, callback),
      );
    } catch (reason) {
      fail(started, requestId, reason, callback);
    }
  };
}
