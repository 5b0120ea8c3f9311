// HTTP-01 for names whose DNS the controller does not serve: the agent answers
// http://<name>/.well-known/acme-challenge/<token> on its plain-HTTP listener (`vnode set
// --http-listen IP:80`). The key authorizations travel in the vnode's desired state (the rows in
// acme_http_challenges, compiled like any other state and pushed through the one deliver service);
// present() resolves once the vnode has applied them, cleanup() takes them out again.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { bumpGeneration, lockVnode } from "../db/generation.ts";
import type { ChallengeAnswer, ChallengeSolver } from "./challenge-solver.ts";

/** Pushes the vnode's whole desired state; `pushed` false when it did not reach the vnode. */
export type PushState = (vnode: string) => Promise<{ pushed: boolean; reason?: string }>;

export function createHttp01Solver(o: {
  em: SqlEntityManager;
  vnodeId: number;
  vnode: string;
  push: PushState | undefined;
}): ChallengeSolver {
  const change = async (answers: readonly ChallengeAnswer[], add: boolean): Promise<void> => {
    await o.em.fork().transactional(async (tx) => {
      await lockVnode(tx, o.vnodeId);
      const connection = tx.getConnection();
      const context = tx.getTransactionContext();
      for (const a of answers)
        await connection.execute(
          add
            ? `insert into acme_http_challenges (vnode_id, token, key_authorization) values (?, ?, ?)
               on conflict (vnode_id, token) do update set key_authorization = excluded.key_authorization`
            : "delete from acme_http_challenges where vnode_id = ? and token = ?",
          add ? [o.vnodeId, a.token, a.value] : [o.vnodeId, a.token],
          "run",
          context,
        );
      await bumpGeneration(tx, o.vnodeId);
    });
  };
  const push = async (): Promise<void> => {
    if (!o.push) throw new NetservaError("failed_precondition", "HTTP-01 needs a way to reach the vnode's agent");
    const outcome = await o.push(o.vnode);
    if (!outcome.pushed)
      throw new NetservaError(
        "unavailable",
        `HTTP-01: the challenge did not reach vnode ${o.vnode}${outcome.reason ? `: ${outcome.reason}` : ""}`,
      );
  };
  return {
    type: "http-01",
    async check(names) {
      const [row] = await o.em
        .fork()
        .getConnection()
        .execute<Array<{ http_listen: string | null }>>("select http_listen from vnodes where id = ?", [o.vnodeId]);
      if (!row?.http_listen)
        throw new NetservaError(
          "failed_precondition",
          `HTTP-01 for ${names.join(", ")}: vnode ${o.vnode} has no HTTP listener; set one with \`vnode set ${o.vnode} --http-listen IP:80\` (the address the names resolve to)`,
          { field: "http-listen" },
        );
    },
    async present(answers) {
      if (answers.length === 0) return;
      await change(answers, true);
      await push();
    },
    async cleanup(answers) {
      if (answers.length === 0) return;
      await change(answers, false);
      await push();
    },
  };
}
