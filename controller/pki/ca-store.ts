// Where the CA key lives with several controllers: in PostgreSQL, sealed under a key-encryption
// key (ca-seal.ts) each controller is given. The controller home keeps the files every signer
// reads (ca/ca.key, ca.crt, previous.*, trust.crt, chain.crt), and they are made from the
// database here: by `init` on a controller that joins, by `serve` at start and whenever a CA
// step lands (ca-watch), by `ca rotate`/`ca retire-old` before they start. The controller that
// makes or rotates the CA publishes it (publishCa), in the same transaction as the step's rows.
//
// Without sealed rows (the embedded database, or PostgreSQL where no controller was given a KEK)
// the home stays the only place of the key, as before: copy ca/ between homes.
import { existsSync, readFileSync, rmSync } from "node:fs";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { writePrivateFile, writePublicFile } from "../../common/pki/files.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { caPin } from "../../common/pki/pin.ts";
import { bundlePem, pemBlocks } from "../../common/pki/trust-bundle.ts";
import { CertificateAuthority } from "../db/entities/index.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { missingKek, openCaKey, openCaKeyWith, sealCaKey, type Kek, type KekKey } from "./ca-seal.ts";

/** Whether the database keeps the CA key (an active CA with a sealed key). */
export async function caKeyInDatabase(em: SqlEntityManager): Promise<boolean> {
  return (await em.count(CertificateAuthority, { state: "active", keySealed: { $ne: null } })) > 0;
}

interface CaFileSet {
  caKey: string;
  caCert: string;
  previous?: { key: string; cert: string };
  trust: string;
  chain: string;
}

function readOr(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, "utf8") : undefined;
}

/**
 * Makes the home's CA files what the database says, when it keeps the key: returns "written"
 * when a file changed, "current" when they already matched, "not kept" when the database has
 * no sealed key (the home is then the truth). Needs the KEK then; a wrong one is refused with
 * a clear error and nothing is written.
 */
export async function materializeCa(
  em: SqlEntityManager,
  paths: HomePaths,
  kek: Kek | undefined,
): Promise<"written" | "current" | "not kept"> {
  const rows = await em.find(
    CertificateAuthority,
    { state: { $in: ["active", "previous"] } },
    { orderBy: { id: "asc" } },
  );
  const active = rows.find((r) => r.state === "active");
  if (!active?.keySealed) return "not kept";
  if (!kek) throw missingKek();
  // A CA key in the home that the fleet never knew is not overwritten: it may be the only copy.
  const home = readOr(paths.caCert);
  if (home !== undefined && !(await em.count(CertificateAuthority, { pin: caPin(home) })))
    throw new NetservaError(
      "failed_precondition",
      `the CA in ${paths.caCert} (${caPin(home)}) is not the one the database keeps (${active.pin}): ` +
        "this home belongs to another fleet; move its ca/ directory aside and run again",
      { field: "ca/ca.crt" },
    );
  const previous = rows.find((r) => r.state === "previous" && r.keySealed);
  const want: CaFileSet = {
    caKey: openCaKey(kek, active.keySealed, active.pin),
    caCert: active.certPem,
    trust: bundlePem(previous ? [{ pem: active.certPem }, { pem: previous.certPem }] : [{ pem: active.certPem }]),
    // During the overlap our certificates travel with the link (new signed by old) and the old root.
    chain:
      previous && active.linkPem ? bundlePem([{ pem: active.linkPem }, { pem: previous.certPem }]) : active.certPem,
  };
  if (previous?.keySealed)
    want.previous = { key: openCaKey(kek, previous.keySealed, previous.pin), cert: previous.certPem };
  let changed = false;
  const put = async (path: string, text: string, secret: boolean): Promise<void> => {
    if (readOr(path) === text) return;
    await (secret ? writePrivateFile(path, text) : writePublicFile(path, text));
    changed = true;
  };
  // The old CA first (as a rotation writes them), the signing CA last.
  if (want.previous) {
    await put(paths.caPreviousKey, want.previous.key, true);
    await put(paths.caPreviousCert, want.previous.cert, false);
  } else if (existsSync(paths.caPreviousKey) || existsSync(paths.caPreviousCert)) {
    rmSync(paths.caPreviousKey, { force: true });
    rmSync(paths.caPreviousCert, { force: true });
    changed = true;
  }
  await put(paths.caTrust, want.trust, false);
  await put(paths.caChain, want.chain, false);
  await put(paths.caKey, want.caKey, true);
  await put(paths.caCert, want.caCert, false);
  return changed ? "written" : "current";
}

/** A CA row by pin, created in `state` when absent. */
/** The CA's row by pin, created from its certificate when new, marked active or previous. */
export async function caRow(
  em: SqlEntityManager,
  pem: string,
  state: "active" | "previous",
): Promise<CertificateAuthority> {
  const pin = caPin(pem);
  const row = await em.findOne(CertificateAuthority, { pin });
  if (row) {
    row.state = state;
    return row;
  }
  const info = inspectCertificate(pem);
  return em.create(CertificateAuthority, {
    pin,
    serial: info.serialHex,
    state,
    certPem: pem,
    notBefore: info.notBefore,
    notAfter: info.notAfter,
    retiredAt: null,
    keySealed: null,
    linkPem: null,
  });
}

/**
 * The KEK to seal with: the one the database's active CA key is sealed under now (during a KEK
 * change-over that may be this controller's previous one: controllers not yet given the new KEK
 * must still open what this step publishes; only `ca rekey` moves the fleet to the new one), or
 * this controller's own when nothing is sealed yet.
 */
async function fleetKek(em: SqlEntityManager, kek: Kek): Promise<KekKey> {
  const active = await em.findOne(CertificateAuthority, { state: "active", keySealed: { $ne: null } });
  return active?.keySealed ? openCaKeyWith(kek, active.keySealed, active.pin).by : kek;
}

/**
 * Seals the home's CA material into the database (the caller flushes): the active CA's key and
 * its link certificate, the previous CA's key during a rotation; a CA no longer active or
 * previous keeps no key. Called with the KEK by `init` (the first controller), `ca rotate` and
 * `ca retire-old`.
 */
export async function publishCa(em: SqlEntityManager, paths: HomePaths, kek: Kek): Promise<void> {
  const sealer = await fleetKek(em, kek);
  const caCert = readFileSync(paths.caCert, "utf8");
  const previousCert = readOr(paths.caPreviousCert);
  const inRotation = previousCert !== undefined && caPin(previousCert) !== caPin(caCert);
  // The old CA's row first: a join token made before rows existed pins the first CA.
  if (inRotation) {
    const previous = await caRow(em, previousCert, "previous");
    previous.keySealed = sealCaKey(sealer, readFileSync(paths.caPreviousKey, "utf8"), previous.pin);
  }
  const active = await caRow(em, caCert, "active");
  active.keySealed = sealCaKey(sealer, readFileSync(paths.caKey, "utf8"), active.pin);
  // chain.crt is the link then the old root during a rotation (ca-rotation.ts).
  if (inRotation) active.linkPem = pemBlocks(readFileSync(paths.caChain, "utf8"))[0] ?? null;
  for (const row of await em.find(CertificateAuthority, { keySealed: { $ne: null } }))
    if (row.pin !== active.pin && !(inRotation && row.state === "previous")) row.keySealed = null;
}
