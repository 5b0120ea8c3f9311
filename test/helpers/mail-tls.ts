// A throwaway CA and a server certificate for the mail hostname (and the vnode's IP), made with
// openssl through execFile. Clients in the tests verify against the CA like real ones would.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const exec = promisify(execFile);

export interface TestTls {
  readonly caPem: string;
  readonly certChainPem: string;
  readonly keyPem: string;
}

/** `leafKey` "rsa:1024" makes a server key that parses and matches but that OpenSSL at Debian's
 * security level 2 refuses to load ("ee key too small"): only the daemon notices. */
export async function createTestTls(
  hostname: string,
  ip: string,
  o: { leafKey?: "ec" | "rsa:1024" } = {},
): Promise<TestTls> {
  const dir = mkdtempSync(join(tmpdir(), "mail-tls-"));
  const f = (n: string): string => join(dir, n);
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    const leaf = o.leafKey === "rsa:1024" ? ["-newkey", "rsa:1024", "-nodes"] : ec;
    await exec("openssl", [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      f("ca.key"),
      "-out",
      f("ca.crt"),
      "-subj",
      "/CN=netserva test CA",
      "-days",
      "2",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    await exec("openssl", ["req", ...leaf, "-keyout", f("srv.key"), "-out", f("srv.csr"), "-subj", `/CN=${hostname}`]);
    writeFileSync(
      f("ext.cnf"),
      `subjectAltName=DNS:${hostname},IP:${ip}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
    );
    await exec("openssl", [
      "x509",
      "-req",
      "-in",
      f("srv.csr"),
      "-CA",
      f("ca.crt"),
      "-CAkey",
      f("ca.key"),
      "-CAcreateserial",
      "-out",
      f("srv.crt"),
      "-days",
      "2",
      "-extfile",
      f("ext.cnf"),
    ]);
    const ca = readFileSync(f("ca.crt"), "utf8");
    return {
      caPem: ca,
      certChainPem: readFileSync(f("srv.crt"), "utf8") + ca,
      keyPem: readFileSync(f("srv.key"), "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface TestCa {
  readonly caPem: string;
  /** A leaf for `names` (DNS SANs) signed by this CA: chain (leaf + CA) and key. */
  issue(names: readonly string[], days?: number): Promise<{ chainPem: string; keyPem: string }>;
  dispose(): void;
}

/** One throwaway CA issuing EC P-256 leaves for any names (SNI tests need several from one CA). */
export async function createTestCa(cn = "netserva test CA"): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), "mail-ca-"));
  const f = (n: string): string => join(dir, n);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await exec("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.crt"),
    "-subj",
    `/CN=${cn}`,
    "-days",
    "30",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const caPem = readFileSync(f("ca.crt"), "utf8");
  let n = 0;
  return {
    caPem,
    async issue(names, days = 2) {
      const i = n++;
      await exec("openssl", [
        "req",
        ...ec,
        "-keyout",
        f(`${i}.key`),
        "-out",
        f(`${i}.csr`),
        "-subj",
        `/CN=${names[0]}`,
      ]);
      writeFileSync(
        f(`${i}.cnf`),
        `subjectAltName=${names.map((x) => `DNS:${x}`).join(",")}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`,
      );
      await exec("openssl", [
        "x509",
        "-req",
        "-in",
        f(`${i}.csr`),
        "-CA",
        f("ca.crt"),
        "-CAkey",
        f("ca.key"),
        "-CAcreateserial",
        "-out",
        f(`${i}.crt`),
        "-days",
        String(days),
        "-extfile",
        f(`${i}.cnf`),
      ]);
      return { chainPem: readFileSync(f(`${i}.crt`), "utf8") + caPem, keyPem: readFileSync(f(`${i}.key`), "utf8") };
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
