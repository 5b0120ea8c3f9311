// The mail TLS certificate is renewed before it expires even when only incremental changes flow:
// a real mail vnode whose CA-issued certificate lives 45 s, a controller whose sweep runs every
// second, and a test that only adds a mailbox (an incremental change). The certificate Dovecot
// serves on 993 changes to a newer one that verifies against the CA for the mail host name; the
// renewals are the sweep's (its command-log rows and metric), and the vnode ends at its generation.
import { connect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normalizeSerialHex } from "../../common/pki/serial.ts";
import { startMailFleet, until, type MailFleet } from "../helpers/mail-fleet.ts";

const isRoot = process.getuid?.() === 0;
const LIFETIME = 45;
const RENEWED = 'netserva_controller_certificate_renewals_total{certificate="mail_tls",result="ok"}';

let fleet: MailFleet;

interface Served {
  serial: string;
  notAfter: number;
}

/** The certificate IMAPS presents, verified against the controller's CA for the mail host name. */
function served(host: string, servername: string): Promise<Served> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port: 993, ca: fleet.caPem, servername });
    socket.once("secureConnect", () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve({ serial: normalizeSerialHex(cert.serialNumber), notAfter: Date.parse(cert.valid_to) });
    });
    socket.once("error", reject);
  });
}

async function metric(sample: string): Promise<number> {
  const line = (await fleet.harness.metrics.text()).split("\n").find((l) => l.startsWith(`${sample} `));
  return line === undefined ? Number.NaN : Number(line.slice(sample.length + 1));
}

async function statusRow(name: string): Promise<Record<string, unknown> | undefined> {
  const rows = JSON.parse((await fleet.harness.cli(["status", "--json"])).out) as Array<Record<string, unknown>>;
  return rows.find((r) => r["vnode"] === name);
}

describe.skipIf(!isRoot)("mail TLS renewal reaches a vnode that only gets incremental changes", () => {
  beforeAll(async () => {
    fleet = await startMailFleet(["tlsr1"], "tlsr", {
      harness: { certificateCheckMs: 1000, config: { mailTlsCertificateSeconds: LIFETIME } },
    });
  }, 240_000);

  afterAll(async () => {
    await fleet?.close();
  });

  it("the served certificate is replaced before it expires, by the sweep", async () => {
    const vn = fleet.vnodes[0];
    if (!vn) throw new Error("no vnode");
    const first = await until(() => served(vn.ns.nsAddress, vn.mailHostname), 30_000, "IMAPS to answer");
    const renewedBefore = await metric(RENEWED);
    const generationBefore = Number((await statusRow(vn.name))?.["generation"]);

    // The only thing the test sends: an incremental change.
    const added = await fleet.harness.cli(
      ["addvmail", vn.name, `alice@${vn.domain}`, "--password-stdin"],
      "Alice-pw-1\n",
    );
    expect(added.code, added.err).toBe(0);

    const next = await until(
      async () => {
        const now = await served(vn.ns.nsAddress, vn.mailHostname);
        return now.serial !== first.serial ? now : undefined;
      },
      120_000,
      "a new certificate on 993",
    );
    // Replaced by one that lasts longer, verified against the CA for the host name by `served`.
    expect(next.notAfter).toBeGreaterThan(first.notAfter);
    expect(await metric(RENEWED)).toBeGreaterThan(renewedBefore);

    const rows = await fleet.harness.db
      .em()
      .fork()
      .getConnection()
      .execute<Array<{ actor: string; result: string }>>(
        "select actor, result from command_log where command = 'mail:tls renew' and vnode_name = ?",
        [vn.name],
      );
    expect(rows.length).toBeGreaterThanOrEqual(1);
    expect(rows.every((r) => r.actor === "controller" && r.result === "ok")).toBe(true);

    const row = await until(
      async () => {
        const r = await statusRow(vn.name);
        return r && r["appliedGeneration"] === r["generation"] ? r : undefined;
      },
      30_000,
      "the vnode at its generation",
    );
    expect(Number(row["generation"])).toBeGreaterThan(generationBefore);
  }, 200_000);
});
