// What a vnode's daemon files would be after adoption, before anything is switched: the state
// the controller would push (compiled now, with the adoption plan's rows in place of the vnode's)
// rendered by the agent without writing anything (PreviewState, allowed while unmanaged).
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { PreviewStateRequestSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { PreviewStateResponse } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { adoptedHashForm } from "../../common/password/stored-hash-form.ts";
import { parseAddress, parseAliasSource, parseDomain } from "../../common/validation/index.ts";
import type { AdoptionPlan } from "../adopt/adoption-plan.ts";
import { compileDesiredState } from "../compiler/compile-state.ts";
import type { Database } from "../db/open-database.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { aliasToProto, domainToProto, mailboxToProto } from "../mail/state-changes.ts";
import { revokedSerials } from "../pki/certificate-records.ts";
import { agentClientFor } from "./agent-for-vnode.ts";
import { enrolledVnode } from "./vnode-management.ts";

export async function previewAdoptedFiles(
  db: Database,
  paths: HomePaths,
  request: { vnode: string; actor: string; plan: AdoptionPlan },
): Promise<PreviewStateResponse> {
  const vnode = await enrolledVnode(db, request.vnode);
  const state = await compileDesiredState(db.em().fork(), vnode);
  const p = request.plan;
  state.domains = p.domains.map((d) =>
    domainToProto({ domain: parseDomain(d.domain, "domain").ascii, active: d.active }),
  );
  state.mailboxes = p.mailboxes.map((m) =>
    mailboxToProto({
      ascii: parseAddress(m.address, "address").ascii,
      passwordHash: adoptedHashForm(m.passwordHash) ?? "",
      quota: m.hasQuota ? m.quotaBytes : 0n,
      active: m.active,
      displayName: "",
      home: m.home,
      uid: m.uid,
      gid: m.gid,
    }),
  );
  state.aliases = p.aliases.map((a) =>
    aliasToProto({
      source: parseAliasSource(a.source, "source").source,
      targets: a.targets.map((t) => parseAddress(t, "target").ascii),
      active: a.active,
    }),
  );
  const revoked = new Set(await revokedSerials(db.em().fork()));
  const client = agentClientFor(paths, vnode, (serial) => revoked.has(serial), 60_000);
  try {
    return await client.call(
      "previewState",
      create(PreviewStateRequestSchema, {
        meta: create(CommandMetaSchema, { requestId: randomUUID(), actor: request.actor }),
        state,
      }),
    );
  } finally {
    client.close();
  }
}
