// Send through 587 with AUTH and receive on another vnode: two vnodes (agent processes in their
// own network namespaces, one controller), a.test hosted on vn1 and b.test on vn2. vn1's Postfix
// finds vn2 the way it would on the Internet: by MX, asking a real PowerDNS that answers on port
// 53 of the host side of each namespace's veth (never 0.0.0.0), named in the namespaces'
// /etc/netns/<ns>/resolv.conf. The records are published by the project's own
// `mail:dns <vnode> <domain> --publish`. Also: vn2 refuses to relay, for a domain it does not
// host, mail coming from vn1 (both from vn1's agent and as a real message vn1 relays, which
// bounces back to the sender).
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  linkNamespaces,
  removeNetnsEtc,
  removeStaleNetnsEtc,
  waitForImapMessage,
  writeNetnsResolvConf,
} from "../helpers/intervnode-net.ts";
import { startMailFleet, type FleetVnode, type MailFleet } from "../helpers/mail-fleet.ts";
import { headerValues } from "../helpers/mail-maildir.ts";
import { buildMessage, sendMail } from "../helpers/mail-smtp.ts";
import type { TestNetns } from "../helpers/netns.ts";
import { pdnsAvailable, startPdns, type Pdns } from "../helpers/pdns.ts";

const canRun =
  process.getuid?.() === 0 && pdnsAvailable && ["/usr/sbin/postfix", "/usr/sbin/dovecot"].every((f) => existsSync(f));
const A = "a.test";
const B = "b.test";
const STRANGER = "c.test";
const ALICE = `alice@${A}`;
const BOB = `bob@${B}`;
const ALICE_PASS = "Alice-secret-pass-1";
const BOB_PASS = "Bob-secret-pass-1";

let fleet: MailFleet | undefined;
let pdns: Pdns | undefined;
let vn1: FleetVnode;
let vn2: FleetVnode;
const namespaces: TestNetns[] = [];
const timings: Record<string, number> = {};

const postfixLog = (v: FleetVnode): string => {
  const file = join(v.root, "var", "log", "netserva-mail", "postfix.log");
  return existsSync(file) ? readFileSync(file, "utf8") : "";
};
/** The log once it shows `line` (Postfix's postlogd writes a moment after the reply is sent);
 * after 30 s, the log as it is, for the assertion to print. */
const postfixLogShowing = async (v: FleetVnode, line: RegExp): Promise<string> => {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const text = postfixLog(v);
    if (line.test(text) || Date.now() > deadline) return text;
    await new Promise((r) => setTimeout(r, 100));
  }
};
const logTail = (v: FleetVnode): string =>
  `--- ${v.name} postfix.log ---\n${postfixLog(v).split("\n").slice(-25).join("\n")}`;

async function cli(argv: string[], stdin = ""): Promise<string> {
  const r = await (fleet as MailFleet).harness.cli(argv, stdin);
  if (r.code !== 0) throw new Error(`${argv.slice(0, 3).join(" ")} exit ${r.code}: ${r.err}`);
  return r.out;
}

describe.skipIf(!canRun)("mail between two vnodes: submitted on vn1:587, found by MX, read on vn2", () => {
  beforeAll(async () => {
    const t0 = performance.now();
    await removeStaleNetnsEtc();
    // The resolver file must exist before `ip netns exec` starts the agent: the bind mount is
    // made then, and Postfix/Dovecot inherit that mount namespace.
    fleet = await startMailFleet(["vn1", "vn2"], "ivd", {
      beforeAgent: async (ns) => {
        namespaces.push(ns);
        writeNetnsResolvConf(ns, ns.hostAddress);
      },
    });
    [vn1, vn2] = fleet.vnodes as [FleetVnode, FleetVnode];
    timings["fleet"] = performance.now() - t0;
    await linkNamespaces(vn1.ns, vn2.ns);
    // Port 53 on the two host-side veth addresses only: what each namespace's resolv.conf names.
    pdns = await startPdns({ dns: { addresses: [vn1.ns.hostAddress, vn2.ns.hostAddress], port: 53 } });
    for (const zone of [A, B, STRANGER, "vn1.test", "vn2.test", "251.10.in-addr.arpa"]) await pdns.createZone(zone);
    Object.assign(fleet.harness.env, {
      NETSERVA_PDNS_URL: pdns.url,
      NETSERVA_PDNS_API_KEY: pdns.apiKey,
      NETSERVA_DNS_RESOLVER: pdns.resolver,
    });
    // Without --skip-dns-check: with PowerDNS configured the zone is looked up there.
    await cli(["addvmaildomain", "vn1", A]);
    await cli(["addvmaildomain", "vn2", B]);
    await cli(["mail:dns", "vn1", A, "--publish"]);
    await cli(["mail:dns", "vn2", B, "--publish"]);
    // A domain nobody here hosts, whose MX points at vn2 (as a misconfigured or hostile zone would).
    const mx = await pdns.api("PATCH", `/zones/${STRANGER}.`, {
      rrsets: [
        {
          name: `${STRANGER}.`,
          type: "MX",
          ttl: 60,
          changetype: "REPLACE",
          records: [{ content: `10 ${vn2.mailHostname}.`, disabled: false }],
        },
      ],
    });
    expect(mx.status).toBe(204);
    await cli(["addvmail", "vn1", ALICE, "--password-stdin"], `${ALICE_PASS}\n`);
    await cli(["addvmail", "vn2", BOB, "--password-stdin"], `${BOB_PASS}\n`);
    timings["setup"] = performance.now() - t0;
  }, 240_000);

  afterAll(async () => {
    await fleet?.close();
    await pdns?.stop();
    for (const ns of namespaces) removeNetnsEtc(ns);
    console.info(
      `intervnode timings (ms): ${JSON.stringify(Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, Math.round(v)])))}`,
    );
  });

  it("inside vn1's namespace the resolver is PowerDNS: mail.vn2.test resolves to vn2, and the records check out", async () => {
    const { stdout } = await vn1.ns.run("getent", ["ahostsv4", vn2.mailHostname]);
    expect(stdout.split(/\s+/)[0]).toBe(vn2.ns.nsAddress);
    const mx = await vn1.ns.run("dig", ["+short", "MX", B]);
    expect(mx.stdout.trim()).toBe(`10 ${vn2.mailHostname}.`);
    // The project's own check agrees: MX, SPF, DMARC, host A, PTR and FCrDNS for vn2 are all OK.
    const check = await (fleet as MailFleet).harness.cli(["mail:dns-check", "vn2", B, "--format", "json"]);
    const rows = JSON.parse(check.out) as Array<{ check: string; status: string }>;
    for (const c of ["mx", "host", "ptr", "fcrdns"])
      expect(rows.find((r) => r.check === c)?.status, `${c}: ${check.out}`).toBe("OK");
  });

  it("alice@a.test submits on vn1:587 (STARTTLS + AUTH) to bob@b.test; it arrives in bob's INBOX on vn2 with a Received chain through vn1", async () => {
    const message = buildMessage({ from: ALICE, to: BOB, subject: "across vnodes", body: "from vn1 to vn2 by MX" });
    const sentAt = performance.now();
    const sent = await sendMail({
      host: vn1.ns.nsAddress,
      port: 587,
      ca: (fleet as MailFleet).caPem,
      servername: vn1.mailHostname,
      startTls: true,
      auth: { user: ALICE, pass: ALICE_PASS },
      from: ALICE,
      to: [BOB],
      data: message.data,
    });
    expect(sent.stage, sent.reply.text).toBe("done");
    let source = "";
    try {
      source = await waitForImapMessage(
        {
          host: vn2.ns.nsAddress,
          servername: vn2.mailHostname,
          ca: (fleet as MailFleet).caPem,
          user: BOB,
          pass: BOB_PASS,
        },
        (s) => s.includes(message.id),
        20_000,
        message.id,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${logTail(vn1)}\n${logTail(vn2)}`);
    }
    timings["submit→IMAP on vn2"] = performance.now() - sentAt;
    const received = headerValues(source, "Received").map((r) => r.replace(/\s+/g, " ").trim());
    // Newest first: vn2's LMTP hop, vn2's smtpd taking it from vn1, vn1's submission taking it from us.
    const fromVn1 = received.find(
      (r) => r.includes(`by ${vn2.mailHostname}`) && r.startsWith(`from ${vn1.mailHostname}`),
    );
    expect(fromVn1, received.join("\n")).toBeDefined();
    // vn2 saw vn1's address, and its PTR (published by mail:dns) named vn1's mail host.
    expect(fromVn1).toContain(`(${vn1.mailHostname} [${vn1.ns.nsAddress}])`);
    expect(fromVn1).toMatch(/with ESMTPS /); // vn1 → vn2 went over STARTTLS (smtp_tls_security_level=may)
    const submission = received.find((r) => r.includes(`by ${vn1.mailHostname}`));
    expect(submission, received.join("\n")).toMatch(/with ESMTPSA /); // authenticated submission on vn1
    expect(received.indexOf(fromVn1 as string)).toBeLessThan(received.indexOf(submission as string));
    // vn1's log shows the relay to vn2 by its MX name, vn2's the delivery to bob.
    {
      const want = new RegExp(
        `to=<${BOB}>, relay=${vn2.mailHostname.replace(/\./g, "\\.")}\\[${vn2.ns.nsAddress.replace(/\./g, "\\.")}\\]:25,.*status=sent`,
      );
      expect(await postfixLogShowing(vn1, want)).toMatch(want);
    }
    {
      const want = new RegExp(
        `client=${vn1.mailHostname.replace(/\./g, "\\.")}\\[${vn1.ns.nsAddress.replace(/\./g, "\\.")}\\]`,
      );
      expect(await postfixLogShowing(vn2, want)).toMatch(want);
    }
  });

  it("vn2 refuses to relay for a domain it does not host when asked from vn1 (mail:test-smtp --from-vnode vn1)", async () => {
    const r = await (fleet as MailFleet).harness.cli([
      "mail:test-smtp",
      "vn2",
      "--from-vnode",
      "vn1",
      "--to",
      `carol@${STRANGER}`,
      "--json",
    ]);
    expect(r.code, r.err).toBe(5);
    const result = JSON.parse(r.out) as { steps: Array<{ name: string; ok: boolean; detail: string }> };
    const failed = result.steps.find((s) => !s.ok);
    expect(failed?.name, r.out).toBe("rcpt");
    expect(failed?.detail).toMatch(/554 5\.7\.1 .*Relay access denied/);
    {
      const want = new RegExp(
        `reject: RCPT from ${vn1.mailHostname.replace(/\./g, "\\.")}\\[${vn1.ns.nsAddress.replace(/\./g, "\\.")}\\]: 554 5\\.7\\.1 <carol@c\\.test>: Relay access denied`,
      );
      expect(await postfixLogShowing(vn2, want)).toMatch(want);
    }
  });

  it("a message alice sends to c.test (MX → vn2) is refused by vn2 and bounces back to alice on vn1", async () => {
    const message = buildMessage({
      from: ALICE,
      to: `carol@${STRANGER}`,
      subject: "to a stranger",
      body: "vn2 must not relay this",
    });
    const sent = await sendMail({
      host: vn1.ns.nsAddress,
      port: 587,
      ca: (fleet as MailFleet).caPem,
      servername: vn1.mailHostname,
      startTls: true,
      auth: { user: ALICE, pass: ALICE_PASS },
      from: ALICE,
      to: [`carol@${STRANGER}`],
      data: message.data,
    });
    expect(sent.stage, sent.reply.text).toBe("done"); // vn1 takes it from its own user ...
    let bounce = "";
    try {
      bounce = await waitForImapMessage(
        {
          host: vn1.ns.nsAddress,
          servername: vn1.mailHostname,
          ca: (fleet as MailFleet).caPem,
          user: ALICE,
          pass: ALICE_PASS,
        },
        (s) => s.includes(message.id) && /^Subject: Undelivered Mail Returned to Sender/m.test(s),
        20_000,
        "the bounce",
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${logTail(vn1)}\n${logTail(vn2)}`);
    }
    // ... and vn2 says no: the DSN carries vn2's reply.
    expect(bounce).toMatch(/Relay access denied/);
    expect(bounce).toContain(vn2.mailHostname);
    {
      const want = new RegExp(
        `to=<carol@c\\.test>, relay=${vn2.mailHostname.replace(/\./g, "\\.")}.*status=bounced .*Relay access denied`,
      );
      expect(await postfixLogShowing(vn1, want)).toMatch(want);
    }
  });
});
