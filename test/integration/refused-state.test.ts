// A state the agent refuses (issue 10), end to end: a real agent process managing real Postfix and
// Dovecot in a namespace, driven by a real controller. The operator points the mail listeners at
// an address the vnode does not have; Postfix's own checker refuses the config. The refusal shows
// as REFUSED in `status` and `mail:status` with the refusal's words, the reconciler retries it with a
// doubling backoff instead of on every health report (each attempt counted by the agent's own
// metrics and none before its retry time), the vnode keeps serving mail on its old config, and
// the fixing change clears the refusal.
import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Vnode } from "../../controller/db/entities/index.ts";
import { DEFAULT_REFUSAL_BACKOFF } from "../../controller/fleet/deliver.ts";
import { smtpConnect } from "../helpers/mail-smtp.ts";
import { startMailFleet, until, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";

const isRoot = process.getuid?.() === 0;
/** TEST-NET-1: no vnode has it, so `postfix check` finds no local interface for it. */
const MISSING_ADDRESS = "192.0.2.77";
const missing = MISSING_ADDRESS.replace(/\./g, "\\.");
/** The agent's bind check finds it while Postfix runs; Postfix's own checker when it does not. */
const REFUSAL = new RegExp(
  `(no local interface found for ${missing}|bind ${missing} port 25 \\(postfix smtp\\): listen EADDRNOTAVAIL)`,
);
/** Refusals to follow: the backoff between them is 2, 4, 8 s. */
const ATTEMPTS = 4;

let fleet: MailFleet;
let v: FleetVnode;
const tls = { ca: "", cert: "", key: "" };

function scrape(): Promise<string> {
  const [host, port] = v.metricsAddress.split(":");
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host, port: Number(port), path: "/metrics", ...tls, servername: v.name, timeout: 10_000 },
      (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** netserva_agent_commands_total for ApplyState with this result (0 when absent). */
async function applyStates(result: "ok" | "refused"): Promise<number> {
  const m = new RegExp(`^netserva_agent_commands_total\\{command="ApplyState",result="${result}"[^}]*\\} (\\d+)$`, "m");
  return Number(m.exec(await scrape())?.[1] ?? 0);
}

const vnodeRow = (): Promise<Vnode | null> => fleet.harness.db.em().fork().findOne(Vnode, { name: v.name });

async function statusRow(): Promise<Record<string, unknown>> {
  const rows = JSON.parse((await fleet.harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
  return rows.find((r) => r["vnode"] === v.name) ?? {};
}

describe.skipIf(!isRoot)("a refused state against a real agent and real daemons", () => {
  beforeAll(async () => {
    fleet = await startMailFleet(["rf1"], "refuse", { listenFromState: true });
    v = fleet.vnodes[0] as FleetVnode;
    tls.ca = fleet.caPem;
    tls.cert = readFileSync(join(fleet.harness.home, "controller.crt"), "utf8");
    tls.key = readFileSync(join(fleet.harness.home, "controller.key"), "utf8");
  });

  afterAll(async () => {
    await fleet?.close();
  });

  it("shows REFUSED with the refusal's words, is retried with backoff (not on every report), and a fix clears it", async () => {
    const refusedBefore = await applyStates("refused");
    const set = await fleet.harness.cli(["vnode", "set", v.name, "--mail-listen", MISSING_ADDRESS]);
    // The refusal's words (the agent's bind check while Postfix runs, else Postfix's checker)
    // reach the operator at once.
    expect(set.err).toMatch(new RegExp(`refused generation \\d+: .*${REFUSAL.source}`));
    const refusedGeneration = Number((await statusRow())["generation"]);

    const status = await statusRow();
    expect(status["refusedGeneration"]).toBe(refusedGeneration);
    expect(status["refused"]).toMatch(REFUSAL);
    expect(status["appliedGeneration"]).toBe(refusedGeneration - 1);
    expect((await fleet.harness.cli(["status"])).out).toMatch(`generation ${refusedGeneration}: config refused`);
    const mail = JSON.parse((await fleet.harness.cli(["mail:status", v.name, "--json"])).out) as {
      refused: { generation: number; reason: string } | null;
    };
    expect(mail.refused?.generation).toBe(refusedGeneration);
    expect(mail.refused?.reason).toMatch(REFUSAL);
    expect((await fleet.harness.cli(["mail:status", v.name])).out).toMatch(/REFUSED/);

    // Follow the refusals the controller records until ATTEMPTS of them: each is one ApplyState
    // the agent refused, and none may come before the retry time the one before it set. Without
    // the backoff the reconciler resends on the first health report 2 s after the last try (so the
    // 3rd and 4th attempts come before their retry times); load only delays attempts further.
    const recorded = new Map<number, { at: number; retryAt: number }>();
    await until(
      async () => {
        const row = await vnodeRow();
        if (row?.refusedAt && row.retryAt && !recorded.has(row.refusedCount))
          recorded.set(row.refusedCount, { at: row.refusedAt.getTime(), retryAt: row.retryAt.getTime() });
        return recorded.has(ATTEMPTS) ? true : undefined;
      },
      180_000,
      `${ATTEMPTS} recorded refusals`,
    );
    const { firstMs, maxMs } = DEFAULT_REFUSAL_BACKOFF;
    for (let k = 1; k <= ATTEMPTS; k++) {
      const r = recorded.get(k);
      expect(r, `refusal ${k} recorded`).toBeDefined();
      // The recorded wait doubles with each refusal of the same generation.
      expect((r?.retryAt ?? 0) - (r?.at ?? 0)).toBe(Math.min(maxMs, firstMs * 2 ** (k - 1)));
      if (k > 1) expect(r?.at ?? 0).toBeGreaterThanOrEqual(recorded.get(k - 1)?.retryAt ?? Infinity);
    }
    // Every attempt reached the agent once and was refused there once (its own count).
    const row = await vnodeRow();
    expect(row?.refusedGeneration).toBe(refusedGeneration);
    expect((await applyStates("refused")) - refusedBefore).toBe(row?.refusedCount);

    // The vnode kept its old config: Postfix still answers on its address.
    const smtp = await smtpConnect({ host: v.ns.nsAddress, port: 25, ca: fleet.caPem, servername: v.mailHostname });
    expect(smtp.greeting.code).toBe(220);
    smtp.close();

    // The fix: a new generation goes at once, whatever the retry time, and clears the refusal.
    const okBefore = await applyStates("ok");
    const fixed = await fleet.harness.cli(["vnode", "set", v.name, "--mail-listen", v.ns.nsAddress]);
    expect(fixed.code, fixed.err).toBe(0);
    const after = await statusRow();
    expect(after["refused"]).toBeNull();
    expect(after["refusedGeneration"]).toBeNull();
    expect(after["refusedCount"]).toBe(0);
    expect(after["retryAt"]).toBeNull();
    expect(after["appliedGeneration"]).toBe(after["generation"]);
    expect(after["generation"]).toBeGreaterThan(refusedGeneration);
    expect(await applyStates("ok")).toBeGreaterThan(okBefore);
    expect((await fleet.harness.cli(["mail:status", v.name])).out).not.toMatch(/REFUSED/);
  });
});
