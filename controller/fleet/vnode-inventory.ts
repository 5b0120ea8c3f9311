// Asks a vnode's agent for the read-only inventory of an existing NetServa installation
// (ReadInventory): the sysadm DB's domains, mailboxes and aliases, and the daemon configs.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { ReadInventoryRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { ReadInventoryResponse } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import type { Database } from "../db/open-database.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { revokedSerials } from "../pki/certificate-records.ts";
import { agentClientFor } from "./agent-for-vnode.ts";
import { enrolledVnode } from "./vnode-management.ts";

export async function readVnodeInventory(
  db: Database,
  paths: HomePaths,
  request: { vnode: string; sysadmDb?: string; actor: string },
): Promise<ReadInventoryResponse> {
  const vnode = await enrolledVnode(db, request.vnode);
  const revoked = new Set(await revokedSerials(db.em().fork()));
  const client = agentClientFor(paths, vnode, (serial) => revoked.has(serial), 120_000);
  try {
    return await client.call(
      "readInventory",
      create(ReadInventoryRequestSchema, {
        meta: create(CommandMetaSchema, { requestId: randomUUID(), actor: request.actor }),
        sysadmDb: request.sysadmDb ?? "",
      }),
    );
  } finally {
    client.close();
  }
}
