// readSigningCa: the CA's key and certificate are read as one pair. Another controller's CA step
// rewrites ca.key, then ca.crt; a reader in between must not sign with the new key under the
// old certificate, so it reads again until they match, and names both files when they never do.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, type CertificateAuthority } from "../../common/pki/ca.ts";
import { NetservaError } from "../../common/errors.ts";
import { readCaFiles, readSigningCa } from "../../controller/pki/ca-files.ts";
import { homePaths } from "../../controller/home/home-paths.ts";

let oldCa: CertificateAuthority;
let newCa: CertificateAuthority;
const roots: string[] = [];

function home(key: string, cert: string): ReturnType<typeof homePaths> {
  const root = mkdtempSync(join(tmpdir(), "nsm-ca-files-"));
  roots.push(root);
  const paths = homePaths(root);
  mkdirSync(join(root, "ca"), { recursive: true });
  writeFileSync(paths.caKey, key);
  writeFileSync(paths.caCert, cert);
  return paths;
}

beforeAll(async () => {
  oldCa = await createCertificateAuthority({ commonName: "old CA", validDays: 30, keyBits: 2048 });
  newCa = await createCertificateAuthority({ commonName: "new CA", validDays: 30, keyBits: 2048 });
});
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

describe("readSigningCa", () => {
  it("returns a matching pair as it is", () => {
    const paths = home(newCa.keyPem, newCa.certPem);
    expect(readSigningCa(paths)).toEqual({ caKeyPem: newCa.keyPem, caCertPem: newCa.certPem });
    expect(readCaFiles(paths).trustPem).toBe(newCa.certPem);
  });

  it("waits out a half-written rotation: new key, old certificate, then the new certificate", async () => {
    const paths = home(newCa.keyPem, oldCa.certPem);
    // The second write comes from another thread while this one waits (it blocks its own loop).
    const worker = new Worker(
      `const { writeFileSync, renameSync } = require("node:fs");
       const { workerData } = require("node:worker_threads");
       setTimeout(() => { writeFileSync(workerData.path + ".tmp", workerData.pem); renameSync(workerData.path + ".tmp", workerData.path); }, 100);`,
      { eval: true, workerData: { path: paths.caCert, pem: newCa.certPem } },
    );
    await new Promise((r) => worker.once("online", r));
    const pair = readSigningCa(paths);
    await new Promise((r) => worker.once("exit", r));
    expect(pair).toEqual({ caKeyPem: newCa.keyPem, caCertPem: newCa.certPem });
  });

  it("refuses a pair that never matches, naming the key file", () => {
    const paths = home(newCa.keyPem, oldCa.certPem);
    let caught: unknown;
    try {
      readSigningCa(paths);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NetservaError);
    expect((caught as NetservaError).field).toBe("ca/ca.key");
    expect((caught as Error).message).toContain(paths.caCert);
  });
});
