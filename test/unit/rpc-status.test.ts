// One error→status map serves both gRPC stacks: Connect's codes must be gRPC's numbers.
import { Code } from "@connectrpc/connect";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { NetservaError, type ErrorCode } from "../../common/errors.ts";
import { errorFromGrpc, grpcStatusOf } from "../../common/rpc/status.ts";

const CODES: ErrorCode[] = [
  "invalid_argument",
  "usage",
  "not_found",
  "already_exists",
  "failed_precondition",
  "unauthenticated",
  "permission_denied",
  "unavailable",
  "deadline_exceeded",
  "internal",
];

describe("error codes on the wire", () => {
  it("Connect's Code and grpc-js's status agree on every number the map uses", () => {
    for (const code of CODES) {
      const number = grpcStatusOf(new NetservaError(code, "x"));
      expect(Code[number], code).toBeDefined();
      expect(Code[number]?.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase()).toBe(GrpcStatus[number]);
    }
  });

  it("every code survives the round trip except usage, which reads as invalid_argument", () => {
    for (const code of CODES) {
      const back = errorFromGrpc({ code: grpcStatusOf(new NetservaError(code, "x")), details: "x" }).code;
      expect(back).toBe(code === "usage" ? "invalid_argument" : code);
    }
  });
});
