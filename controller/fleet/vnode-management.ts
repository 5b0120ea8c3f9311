// Switching a vnode between unmanaged (its agent keeps its hands off the mail configuration it
// found) and managed, through the agent's SetManagement. The controller records what the agent
// answered, so deliveries stop or resume at once rather than at the next health report.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { SetManagementRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { SetManagementResponse } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { Vnode } from "../db/entities/index.ts";
import type { Database } from "../db/open-database.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { revokedSerials } from "../pki/certificate-records.ts";
import { agentClientFor } from "./agent-for-vnode.ts";

export interface ManagementRequest {
  readonly vnode: string;
  readonly managed: boolean;
  readonly dryRun: boolean;
  readonly reason?: string;
  readonly actor: string;
  /** With managed = false: put the files kept aside at the switch back (adoption's rollback). */
  readonly restoreKeptAside?: boolean;
}

export async function enrolledVnode(db: Database, name: string): Promise<Vnode> {
  const vnode = await db.em().fork().findOne(Vnode, { name });
  if (!vnode) throw new NetservaError("not_found", `vnode ${name} not found`);
  if (vnode.status !== "enrolled")
    throw new NetservaError(
      "failed_precondition",
      `vnode ${name} is ${vnode.status}: its agent must be enrolled first`,
    );
  return vnode;
}

export async function setVnodeManagement(
  db: Database,
  paths: HomePaths,
  request: ManagementRequest,
): Promise<SetManagementResponse> {
  const vnode = await enrolledVnode(db, request.vnode);
  const revoked = new Set(await revokedSerials(db.em().fork()));
  const client = agentClientFor(paths, vnode, (serial) => revoked.has(serial), 60_000);
  try {
    const response = await client.call(
      "setManagement",
      create(SetManagementRequestSchema, {
        meta: create(CommandMetaSchema, { requestId: randomUUID(), actor: request.actor }),
        managed: request.managed,
        dryRun: request.dryRun,
        reason: request.reason ?? "",
        restoreKeptAside: request.restoreKeptAside === true,
      }),
    );
    if (!request.dryRun)
      await db
        .em()
        .fork()
        .nativeUpdate(
          Vnode,
          { id: vnode.id },
          {
            management: response.managed ? "managed" : "unmanaged",
            managementReason: response.managed ? null : response.reason,
          },
        );
    return response;
  } finally {
    client.close();
  }
}
