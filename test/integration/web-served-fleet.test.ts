// Served through the whole stack (issue 15): `vnode set --web-listen` reaches a real agent process
// in its namespace, which serves autoconfig for the vnode's domains; `mail:dns --mta-sts` makes
// it serve the policy (mode testing behind the controller's CA); a domain added later
// (incremental change) is served at once; a restarted agent serves again with its controller down.
import { request } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileDesiredState } from "../../controller/compiler/compile-state.ts";
import { Vnode } from "../../controller/db/entities/index.ts";
import { startAgentProcess } from "../helpers/agent-process.ts";
import { AGENT_PORT, startMailFleet, until, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";

const canRun = process.getuid?.() === 0;
let fleet: MailFleet;
let v: FleetVnode;

/** GET on the vnode's listener: TLS verified for the mail host name, the site chosen by Host. */
function get(host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: v.ns.nsAddress,
        port: 443,
        servername: v.mailHostname,
        ca: fleet.caPem,
        agent: false,
        path,
        headers: { host },
        timeout: 5_000,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.end();
  });
}

const served = (host: string, path: string, want: (body: string) => boolean) =>
  until(
    async () => {
      const r = await get(host, path);
      return r.status === 200 && want(r.body) ? r.body : undefined;
    },
    60_000,
    `${host}${path}`,
  );

describe.skipIf(!canRun)("served by a real agent: vnode set --web-listen, mail:dns --mta-sts", () => {
  beforeAll(async () => {
    fleet = await startMailFleet(["wv1"], "webfl");
    const first = fleet.vnodes[0];
    if (!first) throw new Error("no vnode");
    v = first;
  });

  afterAll(async () => {
    await fleet?.close();
  });

  it("autoconfig, then MTA-STS in mode testing, a new domain at once, and again after an agent restart without controller", async () => {
    const h = fleet.harness;
    const set = await h.cli(["vnode", "set", v.name, "--web-listen", `${v.ns.nsAddress}:443`]);
    expect(set.code, set.err).toBe(0);
    const config = await served(`autoconfig.${v.domain}`, "/mail/config-v1.1.xml", (b) => b.includes(v.domain));
    expect(config).toContain(`<emailProvider id="${v.domain}">`);
    expect(config).toContain(`<hostname>${v.mailHostname}</hostname>`);
    expect((await get(`mta-sts.${v.domain}`, "/.well-known/mta-sts.txt")).status).toBe(404);

    const dns = await h.cli(["mail:dns", v.name, v.domain, "--mta-sts"]);
    expect(dns.code, dns.err).toBe(0);
    const policy = await served(`mta-sts.${v.domain}`, "/.well-known/mta-sts.txt", () => true);
    expect(policy).toBe(`version: STSv1\nmode: testing\nmx: ${v.mailHostname}\nmax_age: 86400\n`);
    const vnode = await h.db.em().fork().findOneOrFail(Vnode, { name: v.name });
    expect((await compileDesiredState(h.db.em().fork(), vnode)).served[0]?.mtaStsPolicy).toBe(policy);

    const added = await h.cli(["addvmaildomain", v.name, "later.test", "--skip-dns-check"]);
    expect(added.code, added.err).toBe(0);
    await served("autoconfig.later.test", "/mail/config-v1.1.xml", (b) => b.includes(`id="later.test"`));

    // The agent restarts while its controller is down: it serves from what it committed.
    await h.stopController();
    try {
      await v.agent.stop();
      v.agent = await startAgentProcess({
        ns: v.ns,
        home: join(h.dir, `agent-${v.name}`),
        root: v.root,
        port: AGENT_PORT,
        logDir: fleet.logDir,
        extraArgs: ["--metrics-listen", v.metricsAddress, "--usage-interval", "1000"],
      });
      expect(await served(`mta-sts.${v.domain}`, "/.well-known/mta-sts.txt", () => true)).toBe(policy);
      await served("autoconfig.later.test", "/mail/config-v1.1.xml", (b) => b.includes(`id="later.test"`));
    } finally {
      await h.startController();
    }
  });
});
