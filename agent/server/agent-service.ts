// The AgentService handlers. Each is small: the common path (auth, envelope, replay, metrics)
// lives in command-call.ts; mail work is delegated to the mail host.
import { create } from "@bufbuild/protobuf";
import type { ServerWritableStream, UntypedServiceImplementation } from "@grpc/grpc-js";
import {
  ApplyResponseSchema,
  GetInfoResponseSchema,
  GetMailboxUsageResponseSchema,
  GetStateResponseSchema,
  HealthReportSchema,
  PingResponseSchema,
  UpdateRevocationsResponseSchema,
  UpdateTrustResponseSchema,
  SetManagementResponseSchema,
  PreviewStateResponseSchema,
  ReadInventoryResponseSchema,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type {
  ApplyChangesRequest,
  ApplyResponse,
  ApplyStateRequest,
  GetInfoRequest,
  GetMailboxUsageRequest,
  GetMailboxUsageResponse,
  GetStateRequest,
  RunSmtpTestRequest,
  RunSmtpTestResponse,
  HealthReport,
  PingRequest,
  PingResponse,
  UpdateRevocationsRequest,
  UpdateTrustRequest,
  WatchHealthRequest,
  SetManagementRequest,
  PreviewStateRequest,
  PreviewStateResponse,
  SetManagementResponse,
  ReadInventoryRequest,
  ReadInventoryResponse,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { NetservaError, invalid } from "../../common/errors.ts";
import { daemonVersions, detectInitSystem, hostName, osRelease } from "../info/system-info.ts";
import type { AppliedState } from "./applied-state.ts";
import { authorizeController } from "./authorize.ts";
import { errorToGrpc, unaryCommand } from "./command-call.ts";
import type { CommandDeps } from "./command-call.ts";
import { oneAtATime } from "./mail-port.ts";
import type { ApplyOutcome, MailHostPort } from "./mail-port.ts";
import { toMailbox } from "../health/mail-health.ts";
import { handleSmtpTest } from "../smtp-test/smtp-test-request.ts";
import type { TrustUpdate } from "../enroll/trust-update.ts";
import type { SwitchableMail } from "./switchable-mail.ts";
import { isAbsolute } from "node:path";
import { readSysadmInventory } from "../adopt/sysadm-inventory.ts";
import { decodeRowsInTurns } from "./state-in-turns.ts";

export interface AgentServiceOptions extends CommandDeps {
  vnode: string;
  version: string;
  applied: AppliedState;
  mailHost: MailHostPort | undefined;
  certificateNotAfter(): Date;
  /** Installs a trust bundle the controller pushes (absent: UpdateTrust is refused). */
  trust?: TrustUpdate;
  /** The managed/unmanaged switch (absent without --mail: SetManagement is refused). */
  mail?: SwitchableMail;
  /** NetServa's sysadm DB ReadInventory reads when the request names none. */
  sysadmDb?: string;
}

const MAX_PING_PAYLOAD = 64 * 1024;

function requireMailHost(mailHost: MailHostPort | undefined): MailHostPort {
  if (!mailHost)
    throw new NetservaError(
      "failed_precondition",
      "this agent runs without a mail host (--no-mail): it cannot apply mail state",
    );
  return mailHost;
}

export function createAgentService(options: AgentServiceOptions): UntypedServiceImplementation {
  const started = Date.now();
  const report = async (): Promise<HealthReport> => {
    const services = options.mailHost ? await options.mailHost.services() : [];
    const drift = options.mailHost ? await options.mailHost.drift() : [];
    return create(HealthReportSchema, {
      vnode: options.vnode,
      timeUnixMs: BigInt(Date.now()),
      agentVersion: options.version,
      appliedGeneration: options.applied.generation,
      applyingGeneration: applying,
      certificateNotAfterUnixMs: BigInt(options.certificateNotAfter().getTime()),
      uptimeSeconds: (Date.now() - started) / 1000,
      services,
      stateDigest: options.mailHost ? await options.mailHost.digest() : "",
      drift: drift.length > 0,
      ...(options.mailHost?.health ? { mail: await options.mailHost.health() } : {}),
      ...(options.mail
        ? {
            management: options.mail.management().managed ? "managed" : "unmanaged",
            managementReason: options.mail.management().reason,
          }
        : {}),
    });
  };

  // Applies and their generation checks run one at a time: a base generation checked outside the
  // queue could be stale by the time the changes land, and two answers could set the applied
  // generation out of order.
  const inTurn = oneAtATime();
  /** The generation being applied now (0: none), for the health report (HealthReport.applying_generation). */
  let applying = 0n;
  const applyingNow = async <T>(generation: bigint, work: () => Promise<T>): Promise<T> => {
    applying = generation;
    try {
      return await work();
    } finally {
      applying = 0n;
    }
  };
  const applyResult = async (
    requestId: string,
    generation: bigint,
    outcome: ApplyOutcome,
    dryRun: boolean,
  ): Promise<ApplyResponse> => {
    if (!dryRun && (await options.applied.set(generation))) options.metrics.setAppliedGeneration(Number(generation));
    return create(ApplyResponseSchema, {
      requestId,
      appliedGeneration: options.applied.generation,
      stateDigest: outcome.digest,
      changed: outcome.changed,
      diff: outcome.diff,
    });
  };

  return {
    ping: unaryCommand<PingRequest, PingResponse>(options, {
      name: "Ping",
      metaRequired: true,
      async handle(request, context) {
        if (request.payload.length > MAX_PING_PAYLOAD) throw invalid("payload", `at most ${MAX_PING_PAYLOAD} bytes`);
        return create(PingResponseSchema, {
          requestId: context.requestId,
          payload: request.payload,
          agentTimeUnixMs: BigInt(Date.now()),
        });
      },
      replayed: (response) => ({ ...response, replayed: true }),
    }),
    getInfo: unaryCommand<GetInfoRequest, ReturnType<typeof create<typeof GetInfoResponseSchema>>>(options, {
      name: "GetInfo",
      metaRequired: false,
      async handle() {
        return create(GetInfoResponseSchema, {
          vnode: options.vnode,
          hostname: hostName(),
          os: osRelease(),
          initSystem: detectInitSystem(),
          agentVersion: options.version,
          daemons: await daemonVersions(),
          appliedGeneration: options.applied.generation,
          certificateNotAfterUnixMs: BigInt(options.certificateNotAfter().getTime()),
        });
      },
    }),
    applyState: unaryCommand<ApplyStateRequest, ApplyResponse>(options, {
      name: "ApplyState",
      metaRequired: true,
      async handle(request, context) {
        if (!request.state) throw invalid("state", "missing desired state");
        if (request.state.generation !== context.generation)
          throw invalid("state.generation", "must equal meta.generation");
        const state = request.state;
        const mailHost = requireMailHost(options.mailHost);
        return inTurn(async () => {
          // An older state (compiled before changes that have landed since) would move the vnode
          // backwards: it is answered with where the vnode is, and nothing changes. The same
          // generation again is a repair (drift, digest) and is applied.
          if (!request.dryRun && context.generation < options.applied.generation) {
            context.log.info("older state ignored", {
              generation: context.generation.toString(),
              applied: options.applied.generation.toString(),
            });
            return create(ApplyResponseSchema, {
              requestId: context.requestId,
              appliedGeneration: options.applied.generation,
              stateDigest: await mailHost.digest(),
            });
          }
          const outcome = await applyingNow(request.dryRun ? 0n : context.generation, async () => {
            await decodeRowsInTurns(state); // the rows the deserializer left as bytes
            return mailHost.applyState(state, { dryRun: request.dryRun });
          });
          context.log.info("state applied", {
            generation: context.generation.toString(),
            changed: outcome.changed,
            dry_run: request.dryRun,
          });
          return applyResult(context.requestId, context.generation, outcome, request.dryRun);
        });
      },
      replayed: (response) => ({ ...response, replayed: true }),
    }),
    applyChanges: unaryCommand<ApplyChangesRequest, ApplyResponse>(options, {
      name: "ApplyChanges",
      metaRequired: true,
      async handle(request, context) {
        const mailHost = requireMailHost(options.mailHost);
        if (context.generation <= request.baseGeneration)
          throw invalid("meta.generation", "must be greater than base_generation");
        return inTurn(async () => {
          if (request.baseGeneration !== options.applied.generation) {
            // The vnode missed something (or is ahead): ask for the whole state instead of guessing.
            return create(ApplyResponseSchema, {
              requestId: context.requestId,
              appliedGeneration: options.applied.generation,
              needsFullState: true,
              stateDigest: await mailHost.digest(),
            });
          }
          const started = performance.now();
          const outcome = await applyingNow(request.dryRun ? 0n : context.generation, () =>
            mailHost.applyChanges(request.changes, { dryRun: request.dryRun }),
          );
          const applied = performance.now();
          const response = await applyResult(context.requestId, context.generation, outcome, request.dryRun);
          // Where an apply's time goes (scripts/bench-apply --breakdown reads these two figures).
          context.log.info("changes applied", {
            generation: context.generation.toString(),
            changes: request.changes.length,
            dry_run: request.dryRun,
            apply_ms: Number((applied - started).toFixed(2)),
            lookup_ms: outcome.lookupMs === undefined ? undefined : Number(outcome.lookupMs.toFixed(2)),
            generation_ms: Number((performance.now() - applied).toFixed(2)),
          });
          return response;
        });
      },
      replayed: (response) => ({ ...response, replayed: true }),
    }),
    getState: unaryCommand<GetStateRequest, ReturnType<typeof create<typeof GetStateResponseSchema>>>(options, {
      name: "GetState",
      metaRequired: false,
      async handle() {
        const mailHost = options.mailHost;
        return create(GetStateResponseSchema, {
          appliedGeneration: options.applied.generation,
          stateDigest: mailHost ? await mailHost.digest() : "",
          drift: mailHost ? await mailHost.drift() : [],
        });
      },
    }),
    getMailboxUsage: unaryCommand<GetMailboxUsageRequest, GetMailboxUsageResponse>(options, {
      name: "GetMailboxUsage",
      metaRequired: false,
      async handle() {
        const usage = options.mailHost?.mailboxUsage;
        if (!usage)
          throw new NetservaError(
            "failed_precondition",
            "this agent runs without a mail host (--no-mail): no mailboxes",
          );
        const rows = await usage();
        return create(GetMailboxUsageResponseSchema, {
          collectedUnixMs: BigInt(Date.now()),
          mailboxes: rows.map(toMailbox),
        });
      },
    }),
    runSmtpTest: unaryCommand<RunSmtpTestRequest, RunSmtpTestResponse>(options, {
      name: "RunSmtpTest",
      metaRequired: false,
      async handle(request, context) {
        const response = await handleSmtpTest(request, options.vnode);
        context.log.info("smtp test", {
          host: request.host,
          port: request.port,
          ok: response.ok,
          failed_step: response.steps.find((s) => !s.ok)?.name,
        });
        return response;
      },
    }),
    updateRevocations: unaryCommand<
      UpdateRevocationsRequest,
      ReturnType<typeof create<typeof UpdateRevocationsResponseSchema>>
    >(options, {
      name: "UpdateRevocations",
      metaRequired: true,
      async handle(request) {
        request.revokedSerials.forEach((serial, index) => {
          if (!/^[0-9a-fA-F]{1,64}$/.test(serial))
            throw invalid(`revoked_serials[${index}]`, "must be a hex serial number");
        });
        const count = await options.revocations.replace(request.revokedSerials);
        return create(UpdateRevocationsResponseSchema, { count });
      },
    }),
    updateTrust: unaryCommand<UpdateTrustRequest, ReturnType<typeof create<typeof UpdateTrustResponseSchema>>>(
      options,
      {
        name: "UpdateTrust",
        metaRequired: true,
        async handle(request, context) {
          if (!options.trust)
            throw new NetservaError("failed_precondition", "this agent cannot replace its trusted CAs");
          const result = await options.trust.push({
            bundlePem: request.caBundlePem,
            issuingPin: request.issuingCaPin,
            callerDer: context.peer.der,
          });
          return create(UpdateTrustResponseSchema, { trustedCaPins: result.pins, renewing: result.renewing });
        },
      },
    ),
    setManagement: unaryCommand<SetManagementRequest, SetManagementResponse>(options, {
      name: "SetManagement",
      metaRequired: true,
      async handle(request, context) {
        const mail = options.mail;
        if (!mail)
          throw new NetservaError(
            "failed_precondition",
            "this agent runs without a mail host (--no-mail): nothing to manage",
          );
        if (request.reason.length > 500) throw invalid("reason", "at most 500 characters");
        // In turn with applies: a switch never lands in the middle of one.
        const outcome = await inTurn(() =>
          mail.setManaged({
            managed: request.managed,
            dryRun: request.dryRun,
            reason: request.reason,
            restoreKeptAside: request.restoreKeptAside,
          }),
        );
        if (!request.dryRun)
          context.log.info("management set", { managed: outcome.managed, overwrites: outcome.overwrites.length });
        return create(SetManagementResponseSchema, outcome);
      },
    }),
    previewState: unaryCommand<PreviewStateRequest, PreviewStateResponse>(options, {
      name: "PreviewState",
      metaRequired: false,
      async handle(request) {
        const mail = options.mail;
        if (!mail)
          throw new NetservaError("failed_precondition", "this agent runs without a mail host (--no-mail): no preview");
        if (!request.state) throw invalid("state", "required");
        const files = await mail.preview(request.state);
        return create(PreviewStateResponseSchema, {
          files: files.map((f) => ({ path: f.path, exists: true, sha256: f.sha256, content: f.content })),
        });
      },
    }),
    readInventory: unaryCommand<ReadInventoryRequest, ReadInventoryResponse>(options, {
      name: "ReadInventory",
      metaRequired: false,
      async handle(request, context) {
        const mail = options.mail;
        if (!mail)
          throw new NetservaError(
            "failed_precondition",
            "this agent runs without a mail host (--no-mail): no inventory",
          );
        const path = request.sysadmDb === "" ? options.sysadmDb : request.sysadmDb;
        if (!path) throw invalid("sysadm_db", "no sysadm database given and the agent has no --sysadm-db");
        if (!isAbsolute(path) || path.includes("\0") || path.length > 4096)
          throw invalid("sysadm_db", "must be an absolute path");
        // Read only, never a hash in the log: counts and the DB's path.
        const inventory = readSysadmInventory(path, mail.paths);
        context.log.info("inventory read", {
          sysadm_db: path,
          domains: inventory.domains.length,
          mailboxes: inventory.mailboxes.length,
          aliases: inventory.aliases.length,
        });
        return create(ReadInventoryResponseSchema, inventory);
      },
    }),
    watchHealth: (call: ServerWritableStream<WatchHealthRequest, HealthReport>) => {
      try {
        authorizeController(call, options.revocations);
      } catch (reason) {
        call.destroy(
          Object.assign(new Error(NetservaError.from(reason).message), errorToGrpc(NetservaError.from(reason))),
        );
        return;
      }
      const requested = call.request.intervalMs;
      if (requested !== 0 && (requested < 200 || requested > 60_000)) {
        const error = invalid("interval_ms", "must be 0 (default 5000) or 200..60000");
        call.destroy(Object.assign(new Error(error.message), errorToGrpc(error)));
        return;
      }
      const interval = requested === 0 ? 5000 : requested;
      let timer: NodeJS.Timeout | undefined;
      let closed = false;
      const send = (): void => {
        report().then(
          (health) => {
            if (closed) return;
            call.write(health);
            timer = setTimeout(send, interval);
          },
          (error: unknown) => {
            // One failed report (a daemon slow to answer) must not end the stream's reports.
            options.log.warn("health report failed", { error: String(error) });
            if (!closed) timer = setTimeout(send, interval);
          },
        );
      };
      const stop = (): void => {
        closed = true;
        if (timer) clearTimeout(timer);
      };
      call.on("cancelled", stop);
      call.on("close", stop);
      call.on("error", stop);
      send();
    },
  };
}
