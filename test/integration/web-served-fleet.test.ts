// Served through the whole stack (issue 15): `vnode set --web-listen` reaches a real agent process
// in its namespace, which serves autoconfig for the vnode's domains; `mail:dns --mta-sts` makes
// it serve the policy (mode testing behind the controller's CA); a domain added later
// (incremental change) is served at once; a restarted agent serves again with its controller down.
// A listener that cannot bind (another process holds the port) does not refuse the state: it is
// reported in the health report, `mail:status` and the agent's metrics, and binds by itself once
// the port is free; requests by kind/result and failed TLS handshakes are counted.
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { connect as tcpConnect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileDesiredState } from "../../controller/compiler/compile-state.ts";
import { Vnode } from "../../controller/db/entities/index.ts";
import { startAgentProcess } from "../helpers/agent-process.ts";
import { AGENT_PORT, startMailFleet, until, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";
import { holdPort } from "../helpers/port-holder.ts";

const canRun = process.getuid?.() === 0;
let fleet: MailFleet;
let v: FleetVnode;

/** GET on the vnode's listener: TLS verified for the mail host name, the site chosen by Host. */
function get(host: string, path: string, port = 443): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: v.ns.nsAddress,
        port,
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

/** The agent's /metrics, read with the controller's certificate. */
function scrape(): Promise<string> {
  const [host, port] = v.metricsAddress.split(":");
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        path: "/metrics",
        ca: fleet.caPem,
        cert: readFileSync(join(fleet.harness.home, "controller.crt"), "utf8"),
        key: readFileSync(join(fleet.harness.home, "controller.key"), "utf8"),
        servername: v.name,
        timeout: 10_000,
      },
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

function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

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

  it("a listener that cannot bind is reported (health, mail:status, metrics), binds once free; requests and TLS failures counted", async () => {
    const h = fleet.harness;
    const address = `${v.ns.nsAddress}:8443`;
    const holder = await holdPort(v.ns, v.ns.nsAddress, 8443);
    let released = false;
    try {
      const set = await h.cli(["vnode", "set", v.name, "--web-listen", address]);
      expect(set.code, set.err).toBe(0);
      // The state applies (mail keeps its changes); the listener is reported as not listening.
      let last = "";
      const problem = await until(
        async () => {
          const r = await h.cli(["mail:status", v.name, "--json"]);
          last = r.out + r.err;
          const view = JSON.parse(r.out || "{}") as { problems?: string[]; generationLag?: number };
          const p = view.problems?.find((x) => x.startsWith(`web listener https ${address} not listening`));
          return p !== undefined && view.generationLag === 0 ? p : undefined;
        },
        60_000,
        "the bind failure in mail:status",
      ).catch((error: unknown) => {
        throw new Error(`${String(error)}; mail:status said ${last.slice(0, 3000)}`);
      });
      expect(problem).toContain("EADDRINUSE");
      expect(sample(await scrape(), "netserva_agent_web_listener_up", `address="${address}"`)).toBe(0);

      await holder.release();
      released = true;
      // Nothing but time: the agent tries again by itself (at most every 30 s).
      await until(
        async () =>
          sample(await scrape(), "netserva_agent_web_listener_up", `address="${address}"`) === 1 ? true : undefined,
        90_000,
        "the listener bound after the port was freed",
      );
      const before = await scrape();
      const okBefore = sample(before, "netserva_agent_web_requests_total", `kind="autoconfig",result="2xx"`) ?? 0;
      const tlsBefore = Number(
        before
          .split("\n")
          .find((l) => l.startsWith("netserva_agent_web_tls_handshake_failures_total"))
          ?.split(" ")
          .at(-1) ?? 0,
      );
      expect((await get(`autoconfig.${v.domain}`, "/mail/config-v1.1.xml", 8443)).status).toBe(200);
      // A handshake that fails: plain HTTP spoken to the HTTPS port.
      await new Promise<void>((resolve) => {
        const socket = tcpConnect({ host: v.ns.nsAddress, port: 8443 }, () => socket.write("GET / HTTP/1.0\r\n\r\n"));
        socket.on("error", () => resolve());
        socket.on("close", () => resolve());
        socket.resume();
      });
      await until(
        async () => {
          const text = await scrape();
          const ok = sample(text, "netserva_agent_web_requests_total", `kind="autoconfig",result="2xx"`) ?? 0;
          const tls = Number(
            text
              .split("\n")
              .find((l) => l.startsWith("netserva_agent_web_tls_handshake_failures_total"))
              ?.split(" ")
              .at(-1) ?? 0,
          );
          return ok === okBefore + 1 && tls === tlsBefore + 1 ? true : undefined;
        },
        30_000,
        "one more autoconfig request and one more failed handshake in the metrics",
      );
    } finally {
      if (!released) await holder.release();
    }
  }, 240_000);
});
