// DKIM keys are config (Rspamd's dkim_signing and key files), not lookup rows: a change sends the
// vnode its whole compiled state. An unreachable vnode is not an error: the database holds the
// truth and the reconciler in `serve` applies the generation when the vnode is back.
import { NetservaError } from "../../../../common/errors.ts";
import { compileContextFor } from "../../../compiler/compile-context.ts";
import { Vnode } from "../../../db/entities/index.ts";
import type { Database } from "../../../db/open-database.ts";
import { agentClientFor } from "../../../fleet/agent-for-vnode.ts";
import { sendFullState } from "../../../fleet/apply-to-vnode.ts";
import type { HomePaths } from "../../../home/home-paths.ts";
import { revokedSerials } from "../../../pki/certificate-records.ts";
import type { CliContext } from "../../cli-context.ts";

export async function pushWholeState(
  ctx: CliContext,
  paths: HomePaths,
  db: Database,
  vnodeName: string,
): Promise<boolean> {
  const em = db.em().fork();
  const vnode = await em.findOne(Vnode, { name: vnodeName });
  if (!vnode) return false;
  if (vnode.status !== "enrolled") {
    ctx.io.err(
      `not pushed: vnode ${vnode.name} is ${vnode.status}; generation ${vnode.generation} is applied once its agent is enrolled\n`,
    );
    return false;
  }
  const revoked = new Set(await revokedSerials(em));
  const client = agentClientFor(paths, vnode, (serial) => revoked.has(serial), 10_000);
  try {
    const response = await sendFullState({ em, client, vnode, actor: ctx.actor, compile: compileContextFor(paths) });
    await em.nativeUpdate(
      Vnode,
      { id: vnode.id, appliedGeneration: { $lt: Number(response.appliedGeneration) } },
      { appliedGeneration: Number(response.appliedGeneration) },
    );
    ctx.io.out(`live on ${vnode.name} at generation ${response.appliedGeneration}\n`);
    return true;
  } catch (error) {
    ctx.io.err(
      `not pushed: vnode ${vnode.name} unreachable (${NetservaError.from(error).message}); the reconciler applies generation ${vnode.generation} when it is back\n`,
    );
    return false;
  } finally {
    client.close();
  }
}
