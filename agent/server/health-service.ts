// The standard grpc.health.v1 service, so any gRPC-aware checker (grpc_health_probe, load
// balancers) can ask whether the agent serves. It needs the same client certificate as commands.
import { create } from "@bufbuild/protobuf";
import type { ServerUnaryCall, ServerWritableStream, UntypedServiceImplementation, sendUnaryData } from "@grpc/grpc-js";
import {
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from "../../common/gen/grpc/health/v1/health_pb.ts";
import type { HealthCheckRequest, HealthCheckResponse } from "../../common/gen/grpc/health/v1/health_pb.ts";
import { AgentService } from "../../common/gen/netserva/mail/v1/agent_pb.ts";

const known = new Set(["", AgentService.typeName]);

function statusFor(service: string, serving: () => boolean): HealthCheckResponse {
  const status = !known.has(service)
    ? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN
    : serving()
      ? HealthCheckResponse_ServingStatus.SERVING
      : HealthCheckResponse_ServingStatus.NOT_SERVING;
  return create(HealthCheckResponseSchema, { status });
}

export function createHealthService(serving: () => boolean): UntypedServiceImplementation {
  return {
    check(
      call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
      callback: sendUnaryData<HealthCheckResponse>,
    ) {
      if (!known.has(call.request.service)) {
        callback({ code: 5, details: `unknown service ${call.request.service}` });
        return;
      }
      callback(null, statusFor(call.request.service, serving));
    },
    watch(call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      // We only ever change status by stopping, so one answer and an open stream is enough.
      call.write(statusFor(call.request.service, serving));
    },
  };
}
