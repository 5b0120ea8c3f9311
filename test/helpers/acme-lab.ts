// The ACME tests' shared lab: a real PowerDNS holding one zone, a real Pebble validating DNS-01
// through it, and a controller harness configured to publish challenges there. Vnodes added here
// are rows only (their address is never dialled): what is under test is the controller's orders.
import { startHarness, type CliRun, type Harness } from "./controller-harness.ts";
import { startPdns, type Pdns } from "./pdns.ts";
import { startPebble, type Pebble } from "./pebble.ts";

export interface AcmeLab {
  h: Harness;
  pdns: Pdns;
  pebble: Pebble;
  zone: string;
  sql<T>(text: string, params?: unknown[]): Promise<T[]>;
  /** A vnode row whose mail host name is in the lab's zone. */
  addVnode(name: string, hostname?: string): Promise<void>;
  /** `mail:tls acme <vnode>` against the lab's Pebble, with the zone's hostmaster as contact. */
  acme(vnode: string, extra?: string[]): Promise<CliRun>;
  /** The vnode's stored mail certificate chain (what the next push sends). */
  storedChain(vnode: string): Promise<string>;
  /** The vnode's `mail:tls show --json` row. */
  show<Row>(vnode: string): Promise<Row>;
  close(): Promise<void>;
}

export async function startAcmeLab(zone: string, options: { injecting?: boolean } = {}): Promise<AcmeLab> {
  const pdns = await startPdns();
  let pebble: Pebble | undefined;
  let h: Harness | undefined;
  try {
    await pdns.createZone(zone);
    pebble = await startPebble({ dnsServer: pdns.resolver, validitySeconds: 3600, injecting: options.injecting });
    h = await startHarness({
      certificateCheckMs: 0,
      config: { dns: { url: pdns.url, apiKey: pdns.apiKey }, acmeRetrySeconds: 600 },
    });
  } catch (error) {
    await pebble?.stop();
    await pdns.stop();
    throw error;
  }
  const harness = h;
  const ca = pebble;

  const expectOk = (r: CliRun, what: string): void => {
    if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${r.err}`);
  };
  const sql = <T>(text: string, params: unknown[] = []): Promise<T[]> =>
    harness.db.em().fork().getConnection().execute<T[]>(text, params);

  return {
    h: harness,
    pdns,
    pebble: ca,
    zone,
    sql,
    async addVnode(name, hostname = `mail.${name}.${zone}`) {
      expectOk(await harness.cli(["vnode", "add", name, "--address", "127.0.0.1:1"]), `vnode add ${name}`);
      expectOk(await harness.cli(["vnode", "set", name, "--mail-hostname", hostname]), `vnode set ${name}`);
    },
    acme(vnode, extra = []) {
      return harness.cli([
        "mail:tls",
        "acme",
        vnode,
        "--server",
        ca.directoryUrl,
        "--server-ca",
        ca.serverCaFile,
        "--email",
        `hostmaster@${zone}`,
        ...extra,
      ]);
    },
    async storedChain(vnode) {
      const rows = await sql<{ pem: string }>(
        "select t.certificate_chain_pem as pem from mail_tls t join vnodes v on v.id = t.vnode_id where v.name = ?",
        [vnode],
      );
      return rows[0]?.pem ?? "";
    },
    async show<Row>(vnode: string) {
      const r = await harness.cli(["mail:tls", "show", vnode, "--json"]);
      expectOk(r, `mail:tls show ${vnode}`);
      const row = (JSON.parse(r.out) as Row[])[0];
      if (!row) throw new Error(`no show row for ${vnode}`);
      return row;
    },
    async close() {
      await harness.close();
      await ca.stop();
      await pdns.stop();
    },
  };
}
