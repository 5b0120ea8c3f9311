// Hostile enrollment and renewal against a real controller (Connect server, real TLS), driven by
// the agent's own grpc-js client: oversized keys are refused before any signature work, a
// malformed request does not burn the join token, Enroll is limited per source address and
// token, Renew per certificate identity (not per address), and while a flood of bad requests
// runs the health stream and the CLI keep answering. Costs are counted (signature operations,
// command-log rows, missed health reports), never timed.
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnrollRequestSchema, RenewRequestSchema } from "../../common/gen/netserva/mail/v1/enrollment_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { createLogger } from "../../common/log.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { signatureOperations } from "../../common/pki/signature-count.ts";
import { createEnrollmentClient } from "../../agent/enroll/enrollment-client.ts";
import { agentHomePaths, loadAgentIdentity } from "../../agent/home/agent-home.ts";
import type { EnrollmentClient } from "../../agent/enroll/enrollment-client.ts";
import { startHarness } from "../helpers/controller-harness.ts";
import type { Harness } from "../helpers/controller-harness.ts";
import { junkRsaCsr } from "../helpers/hostile-csr.ts";
import type { RateLimit } from "../../controller/enrollment/rate-limit.ts";
import { runAgentCli } from "../../agent/cli/main.ts";

const AGENT_BIN = join(import.meta.dirname, "..", "..", "bin", "netserva-mail-agent.js");

let harness: Harness;
const logLines: Array<Record<string, unknown>> = [];
let caPem: string;
const agentHomes = new Map<string, string>();

/** The agent's current certificate and key, as it would present them. */
function identityOf(name: string): { certPem: string; keyPem: string } {
  const { certPem, keyPem } = loadAgentIdentity(agentHomePaths(agentHomes.get(name) ?? ""));
  return { certPem, keyPem };
}

const signatures = (): number => signatureOperations.verify + signatureOperations.sign;

function enrollmentClient(identity?: { certPem: string; keyPem: string }): EnrollmentClient {
  return createEnrollmentClient({ address: harness.controllerAddress, caPem, ...(identity ?? {}) });
}

async function refusal(call: Promise<unknown>): Promise<NetservaError> {
  try {
    await call;
  } catch (error) {
    return NetservaError.from(error);
  }
  throw new Error("the call was accepted");
}

/** `vnode add NAME` and the credential part of its join token (`<id>.<secret>`). */
async function joinToken(name: string): Promise<string> {
  const added = await harness.cli(["vnode", "add", name, "--address", "127.0.0.1:9"]);
  expect(added.code).toBe(0);
  const token = added.out.trim().split("\n").pop() ?? "";
  return token.split(".").slice(1, 3).join(".");
}

async function commandLogRows(command: string): Promise<number> {
  const rows = await harness.db
    .em()
    .getConnection()
    .execute<Array<{ n: number | string }>>("select count(*) as n from command_log where command = ?", [command]);
  return Number(rows[0]?.n ?? 0);
}

/**
 * A controller of its own for each group of tests below: the per-address budget of refused
 * enrollments is the controller's, and a test that spends it must not leave others without.
 */
function ownController(agents: readonly string[], signingPerController?: RateLimit): void {
  beforeAll(async () => {
    logLines.length = 0;
    agentHomes.clear();
    harness = await startHarness({
      healthIntervalMs: 300,
      staleAfterMs: 3000,
      // No refill within the test: what is counted must not depend on how fast the machine is.
      enrollmentLimits: {
        enrollFailuresPerAddress: { burst: 20, refillSeconds: 3600 },
        enrollAttemptsPerToken: { burst: 5, refillSeconds: 3600 },
        renewAttemptsPerIdentity: { burst: 5, refillSeconds: 3600 },
        ...(signingPerController ? { signingPerController } : {}),
      },
      log: createLogger({
        level: "debug",
        write: (line) => logLines.push(JSON.parse(line) as Record<string, unknown>),
      }),
    });
    caPem = readFileSync(join(harness.home, "ca", "ca.crt"), "utf8");
    // Agents enroll before any refusal from this address counts against it.
    for (const name of agents) agentHomes.set(name, (await harness.addAgent(name)).home);
  });
  afterAll(async () => {
    await harness?.close();
  });
}

// Refusals here stay well within the address's budget (3 of 20), whatever the order.
describe("hostile enrollment and renewal", () => {
  ownController(["vn-a", "vn-b"]);

  it("refuses a 16,384-bit or malformed request without signature work and without burning the token", async () => {
    const token = await joinToken("mx1");
    const client = enrollmentClient();
    try {
      const { csrPem: good } = await createKeyAndCsr({ commonName: "mx1" });
      const before = signatures();
      for (const csrPem of [junkRsaCsr(16_384), junkRsaCsr(2048, "f".repeat(1024)), "not a csr"]) {
        const error = await refusal(client.enroll(create(EnrollRequestSchema, { token, csrPem, agentVersion: "t" })));
        expect(error.field).toBe("csr");
      }
      expect(signatures() - before).toBe(0);
      // The same token still enrolls: one verification and one signature.
      const enrolled = await client.enroll(create(EnrollRequestSchema, { token, csrPem: good, agentVersion: "t" }));
      expect(enrolled.vnode).toBe("mx1");
      expect(signatures() - before).toBe(2);
    } finally {
      client.close();
    }
  });

  it("limits renewals per certificate identity, not per address: two agents behind one address", async () => {
    const clientA = enrollmentClient(identityOf("vn-a"));
    const clientB = enrollmentClient(identityOf("vn-b"));
    try {
      const { csrPem } = await createKeyAndCsr({ commonName: "renew" });
      for (let i = 0; i < 5; i += 1) await clientA.renew(create(RenewRequestSchema, { csrPem }));
      const limited = await refusal(clientA.renew(create(RenewRequestSchema, { csrPem })));
      expect(limited.message).toMatch(/too many renewals for this vnode/);
      // vn-b comes from the same address and is not throttled by vn-a's renewals.
      for (let i = 0; i < 5; i += 1) await clientB.renew(create(RenewRequestSchema, { csrPem }));
    } finally {
      clientA.close();
      clientB.close();
    }
  });

  it("takes the join token from a file or from stdin, never needing it in argv", async () => {
    const joinString = async (name: string): Promise<string> => {
      const added = await harness.cli(["vnode", "add", name, "--address", "127.0.0.1:9"]);
      return added.out.trim().split("\n").pop() ?? "";
    };
    const tokenFile = join(harness.dir, "join-token");
    writeFileSync(tokenFile, `\n  ${await joinString("vn-file")}  \n`, { mode: 0o600 });
    let out = "";
    let err = "";
    const io = { out: (t: string) => void (out += t), err: (t: string) => void (err += t) };
    const home = join(harness.dir, "agent-vn-file");
    const base = ["enroll", "--controller", harness.controllerAddress, "--home", home];
    expect(await runAgentCli([...base, "--token-file", tokenFile], io)).toBe(0);
    expect(out).toContain("enrolled as vnode vn-file");
    // One of the two, not both and not neither; an empty file is refused naming the flag.
    expect(await runAgentCli([...base, "--token-file", tokenFile, "--token", "x"], io)).toBe(2);
    expect(await runAgentCli(base, io)).toBe(2);
    writeFileSync(tokenFile, "\n");
    expect(await runAgentCli([...base, "--token-file", tokenFile], io)).toBe(1);
    expect(err).toContain("token-file: is empty");

    // `--token-file -`: the real program, the token piped in.
    const token = await joinString("vn-stdin");
    const result = await new Promise<{ code: number | null; out: string; args: string[] }>((resolve) => {
      const args = ["enroll", "--controller", harness.controllerAddress, "--token-file", "-"];
      const child = spawn(process.execPath, [AGENT_BIN, ...args, "--home", join(harness.dir, "agent-vn-stdin")], {
        stdio: ["pipe", "pipe", "inherit"],
      });
      let text = "";
      child.stdout.on("data", (c: Buffer) => void (text += c.toString()));
      child.once("close", (code) => resolve({ code, out: text, args: child.spawnargs }));
      child.stdin.end(`${token}\n`);
    });
    expect(result.code).toBe(0);
    expect(result.out).toContain("enrolled as vnode vn-stdin");
    expect(result.args.join(" ")).not.toContain(token.split(".")[2] ?? "?");
  });
});

describe("refused enrollments from one address", () => {
  ownController([]);

  it("limits refused enrollments per source address: the rest cost no database row", async () => {
    const client = enrollmentClient();
    try {
      const logged = await commandLogRows("agent enroll");
      const errors: NetservaError[] = [];
      for (let i = 0; i < 40; i += 1) {
        const token = `bad${i.toString().padStart(3, "0")}.${"x".repeat(16)}`;
        errors.push(
          await refusal(client.enroll(create(EnrollRequestSchema, { token, csrPem: "x", agentVersion: "t" }))),
        );
      }
      const limited = errors.filter((e) => /too many refused enrollments from this address/.test(e.message)).length;
      // 20 refusals from this address are let through (and logged); the others are turned away
      // at the door.
      expect(limited).toBe(40 - 20);
      expect((await commandLogRows("agent enroll")) - logged).toBe(40 - limited);
    } finally {
      client.close();
    }
  });
});

describe("a flood of bad enrollments and renewals", () => {
  ownController(["vn-flood"]);

  it("during a flood of bad enrollments and renewals, health and the CLI keep answering at no signature cost", async () => {
    const reports = async (): Promise<string | null> => {
      const status = await harness.cli(["status", "--json"]);
      const rows = JSON.parse(status.out) as Array<{ vnode: string; lastHealthAt: string | null; connected: boolean }>;
      const row = rows.find((r) => r.vnode === "vn-flood");
      return row?.connected ? row.lastHealthAt : null;
    };
    while ((await reports()) === null) await new Promise((r) => setTimeout(r, 100));
    const healthBefore = await reports();
    const downsBefore = logLines.filter((l) => l["msg"] === "vnode down").length;
    const before = signatures();

    const renewer = enrollmentClient(identityOf("vn-flood"));
    const enroller = enrollmentClient();
    const huge = junkRsaCsr(16_384);
    const flood: Array<Promise<unknown>> = [];
    let cliAnswers = 0;
    try {
      for (let i = 0; i < 100; i += 1) {
        flood.push(
          refusal(
            enroller.enroll(
              create(EnrollRequestSchema, { token: `f${i}.${"y".repeat(16)}`, csrPem: huge, agentVersion: "t" }),
            ),
          ),
        );
        flood.push(refusal(renewer.renew(create(RenewRequestSchema, { csrPem: huge }))));
        if (i % 20 === 0)
          flood.push(harness.cli(["status", "--json"]).then((r) => void (r.code === 0 && (cliAnswers += 1))));
      }
      await Promise.all(flood);
      // Health kept flowing: a newer report arrived after the flood, and the link never went down.
      let healthAfter = await reports();
      while (healthAfter === healthBefore) {
        await new Promise((r) => setTimeout(r, 100));
        healthAfter = await reports();
      }
      expect(healthAfter).not.toBeNull();
    } finally {
      renewer.close();
      enroller.close();
    }
    expect(cliAnswers).toBe(5);
    expect(signatures() - before).toBe(0);
    expect(logLines.filter((l) => l["msg"] === "vnode down").length - downsBefore).toBe(0);
  });
});

// Over the keyed limits, one controller-wide cap on what may cost a signature: a flood spread over
// many tokens (or certificates, or addresses) is turned away at the door once it is spent.
describe("the controller-wide signing cap", () => {
  ownController([], { burst: 3, refillSeconds: 3600 });

  it("turns away enrollments past it whatever their token, without a database row or a signature", async () => {
    const client = enrollmentClient();
    try {
      const logged = await commandLogRows("agent enroll");
      const outcomes: Array<string | undefined> = [];
      for (let i = 0; i < 5; i += 1) {
        const token = await joinToken(`cap${i}`);
        const { csrPem } = await createKeyAndCsr({ commonName: `cap${i}` });
        const before = signatures();
        const answer = await client
          .enroll(create(EnrollRequestSchema, { token, csrPem, agentVersion: "t" }))
          .then((r) => r.vnode)
          .catch((error: unknown) => {
            expect(signatures() - before).toBe(0);
            return NetservaError.from(error).message;
          });
        outcomes.push(answer);
      }
      expect(outcomes.slice(0, 3)).toEqual(["cap0", "cap1", "cap2"]);
      for (const refused of outcomes.slice(3))
        expect(refused).toMatch(/too many enrollments and renewals at this controller right now: try again in \d+ s/);
      expect((await commandLogRows("agent enroll")) - logged).toBe(3);
    } finally {
      client.close();
    }
  });
});
