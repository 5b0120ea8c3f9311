// The agent's applied generation cannot go backwards: base_generation is checked inside the
// one-apply-at-a-time queue (a change sent right behind a whole state applies on top of it), an
// older whole state changes nothing, and the agent's own state files are written atomically under
// unique temp names and read tolerantly (a torn file never stops the agent from starting).
// A real agent server over mutual TLS, with a mail host port that records what it is asked.
import { randomUUID } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ApplyChangesRequestSchema,
  ApplyStateRequestSchema,
  WatchHealthRequestSchema,
  type HealthReport,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { ApplyResponse } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { CommandMetaSchema } from "../../common/gen/netserva/mail/v1/command_pb.ts";
import { DesiredStateSchema } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { silentLogger } from "../../common/log.ts";
import { agentHomePaths, loadAgentIdentity } from "../../agent/home/agent-home.ts";
import { createAgentMetrics } from "../../agent/metrics/agent-metrics.ts";
import { createAppliedState } from "../../agent/server/applied-state.ts";
import { startAgentServer, type AgentServer } from "../../agent/server/agent-server.ts";
import type { ApplyOutcome, MailHostPort } from "../../agent/server/mail-port.ts";
import { createRevocations } from "../../agent/server/revocations.ts";
import { createAgentClient, type AgentClient } from "../../controller/fleet/agent-client.ts";
import { homePaths } from "../../controller/home/home-paths.ts";
import { freePort, startHarness, type Harness } from "../helpers/controller-harness.ts";

let harness: Harness;
let agentHome: string;
let vnAgent: Awaited<ReturnType<Harness["addAgent"]>>;

/**
 * A fresh agent server at generation 0 (its own applied-state file, metrics and port), with a mail
 * host port that records what it is asked and waits on `hold` while applying: each test starts
 * from nothing, whatever ran before it.
 */
async function startGenerationAgent(): Promise<{
  client: AgentClient;
  calls: string[];
  metrics: ReturnType<typeof createAgentMetrics>;
  hold(): () => void;
  applyState(generation: number): Promise<ApplyResponse>;
  applyChanges(base: number): Promise<ApplyResponse>;
  close(): Promise<void>;
}> {
  const calls: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  const metrics = createAgentMetrics({ vnode: "vn-gen", version: "test" });
  const outcome = async (what: string): Promise<ApplyOutcome> => {
    if (what === "state 99")
      throw new NetservaError("failed_precondition", "config refused at validation: postfix check failed");
    calls.push(`${what} start`);
    await gate;
    calls.push(`${what} end`);
    return { changed: true, diff: [what], digest: "d" };
  };
  const port: MailHostPort = {
    applyState: (state) => outcome(`state ${state.generation}`),
    applyChanges: (changes) => outcome(`changes ${changes.length}`),
    digest: async () => "d",
    drift: async () => [],
    services: async () => [],
  };
  const paths = agentHomePaths(agentHome);
  const identity = loadAgentIdentity(paths);
  const listen = `127.0.0.1:${await freePort()}`;
  const server: AgentServer = await startAgentServer({
    vnode: "vn-gen",
    version: "test",
    caPem: identity.caPem,
    certPem: identity.certPem,
    keyPem: identity.keyPem,
    certificateNotAfter: new Date(Date.now() + 3_600_000),
    revocations: createRevocations(),
    applied: createAppliedState({ file: `${paths.applied}.test-${randomUUID()}` }),
    metrics,
    log: silentLogger,
    mailHost: port,
    listen,
  });
  const controller = homePaths(harness.home);
  const client = createAgentClient({
    vnode: "vn-gen",
    address: listen,
    caPem: readFileSync(controller.caCert, "utf8"),
    certPem: readFileSync(controller.cert, "utf8"),
    keyPem: readFileSync(controller.key, "utf8"),
  });
  const meta = (generation: number) =>
    create(CommandMetaSchema, { requestId: randomUUID(), generation: BigInt(generation), actor: "test" });
  return {
    client,
    calls,
    metrics,
    hold() {
      let open = (): void => undefined;
      gate = new Promise((r) => (open = r));
      return open;
    },
    applyState: (generation) =>
      client.call(
        "applyState",
        create(ApplyStateRequestSchema, {
          meta: meta(generation),
          state: create(DesiredStateSchema, { generation: BigInt(generation) }),
        }),
      ),
    applyChanges: (base) =>
      client.call(
        "applyChanges",
        create(ApplyChangesRequestSchema, { meta: meta(base + 1), baseGeneration: BigInt(base), changes: [] }),
      ),
    async close() {
      client.close();
      await server.close();
    },
  };
}

beforeAll(async () => {
  harness = await startHarness();
  vnAgent = await harness.addAgent("vn-gen");
  agentHome = vnAgent.home;
});

afterAll(async () => {
  await harness?.close();
});

describe("agent generations", () => {
  describe("applied generation", () => {
    it("checks base_generation in the apply queue: changes right behind a whole state apply on top of it", async () => {
      const agent = await startGenerationAgent();
      try {
        const open = agent.hold();
        const state = agent.applyState(5);
        // Sent while generation 5 is still being applied: the agent is at 0 when it arrives.
        const changes = agent.applyChanges(5);
        // Both requests travel on one connection; the second reaches the agent while the first waits.
        await new Promise((r) => setTimeout(r, 200));
        open();
        expect(Number((await state).appliedGeneration)).toBe(5);
        const answer = await changes;
        expect(answer.needsFullState).toBe(false);
        expect(Number(answer.appliedGeneration)).toBe(6);
        expect(agent.calls).toEqual(["state 5 start", "state 5 end", "changes 0 start", "changes 0 end"]);
      } finally {
        await agent.close();
      }
    });

    it("health reports carry the generation under way while it is applied, and none after", async () => {
      const agent = await startGenerationAgent();
      const stream = agent.client.watchHealth(create(WatchHealthRequestSchema, { intervalMs: 200 }));
      try {
        const reports = stream[Symbol.asyncIterator]() as AsyncIterator<HealthReport>;
        const next = async (): Promise<HealthReport> => {
          const r = await reports.next();
          if (r.done) throw new Error("health stream ended");
          return r.value;
        };
        expect(Number((await next()).applyingGeneration)).toBe(0);
        const open = agent.hold();
        const state = agent.applyState(8);
        let during = await next();
        while (during.applyingGeneration === 0n) during = await next(); // the call is on its way
        expect({ applied: Number(during.appliedGeneration), applying: Number(during.applyingGeneration) }).toEqual({
          applied: 0,
          applying: 8,
        });
        open();
        expect(Number((await state).appliedGeneration)).toBe(8);
        let after = await next();
        while (after.appliedGeneration !== 8n) after = await next();
        expect(Number(after.applyingGeneration)).toBe(0);
      } finally {
        stream.cancel();
        await agent.close();
      }
    });

    it("an older whole state changes nothing; the same generation again is applied (a repair)", async () => {
      const agent = await startGenerationAgent();
      try {
        expect(Number((await agent.applyState(7)).appliedGeneration)).toBe(7);
        const older = await agent.applyState(6);
        expect(Number(older.appliedGeneration)).toBe(7);
        expect(older.changed).toBe(false);
        expect(Number((await agent.applyState(7)).appliedGeneration)).toBe(7);
        expect(agent.calls).toEqual(["state 7 start", "state 7 end", "state 7 start", "state 7 end"]);
        // Changes on an older base ask for the whole state and leave the generation alone.
        const stale = await agent.applyChanges(5);
        expect(stale.needsFullState).toBe(true);
        expect(Number(stale.appliedGeneration)).toBe(7);
      } finally {
        await agent.close();
      }
    });

    it("a refused state leaves the generation alone and counts as refused in the agent's metrics", async () => {
      const agent = await startGenerationAgent();
      try {
        expect(Number((await agent.applyState(7)).appliedGeneration)).toBe(7);
        const err = await agent.applyState(99).catch((e: unknown) => e);
        expect(err).toMatchObject({ code: "failed_precondition" });
        expect(Number((await agent.applyState(7)).appliedGeneration)).toBe(7);
        const text = await agent.metrics.registry.getSingleMetricAsString("netserva_agent_commands_total");
        expect(text).toMatch(/command="ApplyState",result="refused"[^\n]*\} 1$/m);
      } finally {
        await agent.close();
      }
    });
  });

  describe("the agent's state files", () => {
    it("many concurrent writes: unique temp names, the newest generation wins, nothing left behind", async () => {
      const file = `${agentHomePaths(agentHome).applied}.concurrent`;
      const applied = createAppliedState({ file });
      await Promise.all(Array.from({ length: 20 }, (_, i) => applied.set(BigInt(i + 1))));
      expect(applied.generation).toBe(20n);
      expect(createAppliedState({ file }).generation).toBe(20n);
      expect(await applied.set(3n)).toBe(false);
      expect(createAppliedState({ file }).generation).toBe(20n);
      expect(readdirSync(dirname(file)).filter((f) => f.includes(".ns-"))).toEqual([]);
    });

    it("a torn applied or revocation file is reported, read as empty, and the agent still starts", async () => {
      const paths = agentHomePaths(agentHome);
      writeFileSync(paths.applied, '{"generation":"12');
      writeFileSync(paths.revocations, '["0a1b');
      const applied = createAppliedState({ file: paths.applied });
      expect(applied.generation).toBe(0n);
      expect(applied.problem).toMatch(/not valid JSON/);
      const revocations = createRevocations({ file: paths.revocations });
      expect(revocations.size).toBe(0);
      expect(revocations.problem).toMatch(/not valid JSON/);
      writeFileSync(paths.applied, '{"generation": 12}');
      expect(createAppliedState({ file: paths.applied }).problem).toMatch(/unexpected content/);
      // The enrolled agent of this home restarts on the torn files and reports generation 0.
      writeFileSync(paths.applied, '{"gener');
      await vnAgent.agent.close();
      const restarted = await vnAgent.restart();
      const status = async () =>
        (JSON.parse((await harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>).find(
          (r) => r["vnode"] === "vn-gen",
        );
      const deadline = Date.now() + 20_000;
      while (!((await status())?.["connected"] === true && (await status())?.["appliedGeneration"] === 0)) {
        if (Date.now() > deadline) throw new Error("the restarted agent did not report generation 0");
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(restarted).toBeDefined();
    });
  });
});
