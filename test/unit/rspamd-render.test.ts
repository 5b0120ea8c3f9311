// Rendering of Rspamd's local.d, DKIM key files and clamd.conf: no daemons, just the text.
import { create } from "@bufbuild/protobuf";
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createClamavPaths } from "../../agent/clamav/paths.ts";
import { renderClamdConf } from "../../agent/clamav/render.ts";
import { EICAR, renderEicarNdb } from "../../agent/clamav/signatures.ts";
import { renderDkimKeyFiles } from "../../agent/rspamd/dkim-keys.ts";
import { createRspamdPaths } from "../../agent/rspamd/paths.ts";
import { renderRspamdLocalD, type RspamdRenderOptions } from "../../agent/rspamd/render.ts";
import { NETWORK_MODULES } from "../../agent/rspamd/render-modules.ts";
import { NetservaError } from "../../common/errors.ts";
import { DkimKeySchema, VnodeSettingsSchema, type DkimKey } from "../../common/gen/netserva/mail/v1/state_pb.ts";

const root = "/srv/vnodes/nsm-unit";
const paths = createRspamdPaths(root);
const rsaPem = generateKeyPairSync("rsa", { modulusLength: 2048 })
  .privateKey.export({ type: "pkcs1", format: "pem" })
  .toString();
const edPem = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const keys: DkimKey[] = [
  create(DkimKeySchema, { domain: "example.org", selector: "s2026", algorithm: "rsa", privateKeyPem: rsaPem }),
  create(DkimKeySchema, { domain: "example.org", selector: "ed2026", algorithm: "ed25519", privateKeyPem: edPem }),
];

function options(over: Partial<RspamdRenderOptions> = {}): RspamdRenderOptions {
  return {
    paths,
    settings: create(VnodeSettingsSchema, { rspamdEnabled: true, clamavEnabled: true }),
    dkimKeys: keys,
    clamavSocket: `${root}/run/clamav/clamd.ctl`,
    milterListen: paths.milterSocket,
    disableNetworkModules: true,
    ...over,
  };
}

function refusal(fn: () => unknown): NetservaError {
  try {
    fn();
  } catch (err) {
    if (err instanceof NetservaError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("renderRspamdLocalD", () => {
  it("renders every managed file with all paths under the root", () => {
    const files = renderRspamdLocalD(options({ greylist: false }));
    for (const name of [
      "worker-proxy.inc",
      "worker-normal.inc",
      "worker-controller.inc",
      "options.inc",
      "actions.conf",
      "milter_headers.conf",
      "antivirus.conf",
      "force_actions.conf",
      "dkim_signing.conf",
      "greylist.conf",
      "logging.inc",
    ]) {
      expect(files.has(name), name).toBe(true);
    }
    const all = [...files.values()].join("\n");
    for (const m of all.matchAll(/"(\/[^" ]*)/g)) expect(m[1]?.startsWith(`${root}/`), m[1]).toBe(true);
    expect(files.get("worker-proxy.inc")).toMatch(
      /milter = yes;[\s\S]*upstream "local" \{\s*default = yes;\s*self_scan = yes;/,
    );
    // Postfix's group only: another local user cannot hand the filter mail (the socket was 0666).
    expect(files.get("worker-proxy.inc")).toContain(
      `bind_socket = "${paths.milterSocket} mode=0660 owner=_rspamd group=postfix";`,
    );
    expect(files.get("actions.conf")).toMatch(/reject = 15;\nadd_header = 6;\ngreylist = null;/);
    expect(files.get("greylist.conf")).toContain("enabled = false;");
    expect(files.get("antivirus.conf")).toMatch(
      /type = "clamav";[\s\S]*servers = "\/srv\/vnodes\/nsm-unit\/run\/clamav\/clamd.ctl";[\s\S]*action = "reject";/,
    );
    expect(files.get("milter_headers.conf")).toMatch(/header = "X-Spam-Flag";\s*value = "YES";/);
    // A scanner that cannot answer defers the mail (4xx), it never lets it through unscanned.
    expect(files.get("force_actions.conf")).toMatch(
      /action = "soft reject";\s*expression = "CLAM_VIRUS_FAIL";\s*honor_action = \["reject"\];/,
    );
  });

  it("turns every network-bound module off only when asked", () => {
    const off = renderRspamdLocalD(options());
    const on = renderRspamdLocalD(options({ disableNetworkModules: false }));
    for (const m of NETWORK_MODULES) {
      expect(off.get(`${m}.conf`), m).toContain("enabled = false;");
      expect(on.get(`${m}.conf`), m).not.toContain("enabled = false;");
    }
  });

  it("signs per domain with every selector and key path, from the header domain", () => {
    const conf = renderRspamdLocalD(options()).get("dkim_signing.conf") ?? "";
    expect(conf).toContain('use_domain = "header";');
    expect(conf).toMatch(/sign_authenticated = true;\s*sign_local = true;/);
    expect(conf).toContain(`{ selector = "s2026"; path = "${paths.dkimDir}/example.org.s2026.key"; }`);
    expect(conf).toContain(`{ selector = "ed2026"; path = "${paths.dkimDir}/example.org.ed2026.key"; }`);
    expect(renderRspamdLocalD(options({ dkimKeys: [] })).get("dkim_signing.conf")).toContain("enabled = false;");
  });

  it("renders no scanner when ClamAV is off, and needs a socket when it is on", () => {
    const off = renderRspamdLocalD(options({ settings: create(VnodeSettingsSchema, { clamavEnabled: false }) }));
    expect(off.get("antivirus.conf")).not.toContain("clamav {");
    expect(off.get("force_actions.conf")).not.toContain("rules {");
    const { clamavSocket: _unused, ...rest } = options();
    expect(refusal(() => renderRspamdLocalD(rest)).field).toBe("clamavSocket");
  });

  it("refuses unsafe listeners and paths", () => {
    expect(refusal(() => renderRspamdLocalD(options({ milterListen: "127.0.0.1:0" }))).field).toBe("milterListen");
    expect(refusal(() => renderRspamdLocalD(options({ milterListen: "/tmp/$HOME.sock" }))).field).toBe("milterListen");
    expect(refusal(() => renderRspamdLocalD(options({ normalListen: 'x";evil' }))).field).toBe("normalListen");
    expect(refusal(() => renderRspamdLocalD(options({ dnsServers: ["/run/dns.sock"] }))).field).toBe("dnsServers[0]");
    expect(refusal(() => renderRspamdLocalD(options({ rejectScore: 5, addHeaderScore: 6 }))).field).toBe("rejectScore");
  });
});

describe("renderDkimKeyFiles", () => {
  it("writes 0600 files owned by _rspamd: RSA as PEM, Ed25519 as Rspamd's base64 seed", () => {
    const files = renderDkimKeyFiles(paths, keys);
    expect(files.map((f) => [f.path, f.mode, f.owner])).toEqual([
      [`${paths.dkimDir}/example.org.s2026.key`, 0o600, "_rspamd"],
      [`${paths.dkimDir}/example.org.ed2026.key`, 0o600, "_rspamd"],
    ]);
    expect(files[0]?.content).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(Buffer.from(files[1]?.content.trim() ?? "", "base64")).toHaveLength(32);
  });

  it("refuses bad names, wrong algorithms, weak and duplicate keys, naming the field", () => {
    const base = { domain: "example.org", selector: "s2026", algorithm: "rsa", privateKeyPem: rsaPem };
    const key = (over: Partial<typeof base>) => create(DkimKeySchema, { ...base, ...over });
    expect(refusal(() => renderDkimKeyFiles(paths, [key({ selector: "../x" })])).field).toBe("dkim_keys[0].selector");
    expect(refusal(() => renderDkimKeyFiles(paths, [key({ domain: "Example.org" })])).field).toBe(
      "dkim_keys[0].domain",
    );
    expect(refusal(() => renderDkimKeyFiles(paths, [key({ algorithm: "dsa" })])).field).toBe("dkim_keys[0].algorithm");
    expect(refusal(() => renderDkimKeyFiles(paths, [key({ algorithm: "ed25519" })])).field).toBe(
      "dkim_keys[0].private_key_pem",
    );
    expect(refusal(() => renderDkimKeyFiles(paths, [key({ privateKeyPem: "nope" })])).message).not.toContain("nope");
    const weak = generateKeyPairSync("rsa", { modulusLength: 512 })
      .privateKey.export({ type: "pkcs8", format: "pem" })
      .toString();
    expect(refusal(() => renderDkimKeyFiles(paths, [key({ privateKeyPem: weak })])).field).toBe(
      "dkim_keys[0].private_key_pem",
    );
    expect(refusal(() => renderDkimKeyFiles(paths, [keys[0]!, keys[0]!])).field).toBe("dkim_keys[1].selector");
  });
});

describe("clamd.conf and the EICAR database", () => {
  it("keeps socket, database, pid and log under the root and daemonises", () => {
    const conf = renderClamdConf({ paths: createClamavPaths(root) });
    expect(conf).toContain(`LocalSocket ${root}/run/clamav/clamd.ctl\n`);
    expect(conf).toContain(`DatabaseDirectory ${root}/var/lib/clamav\n`);
    expect(conf).toContain(`PidFile ${root}/run/clamav/clamd.pid\n`);
    expect(conf).toContain("Foreground no\n");
    expect(conf).not.toMatch(/TCPSocket/);
  });

  it("writes an .ndb body signature of the 68-byte EICAR string", () => {
    expect(Buffer.byteLength(EICAR, "latin1")).toBe(68);
    const [name, type, offset, hex] = renderEicarNdb().trim().split(":");
    expect([name, type, offset]).toEqual(["Eicar-Test-Signature", "0", "*"]);
    expect(Buffer.from(hex ?? "", "hex").toString("latin1")).toBe(EICAR);
  });
});
