// CA rotation with overlap, in two operator steps:
//
//   `ca rotate`      a new CA (same name, new key) signs from now on; peers trust old and new
//                    (trust.crt); our certificates travel with a link certificate (new CA signed
//                    by the old, chain.crt) so agents that trust only the old CA still accept
//                    them; the controller's own certificate is reissued by the new CA. The
//                    running daemon notices, swaps its TLS identity, pushes the bundle to every
//                    agent and tells each agent whose certificate is from the old CA to renew.
//   `ca retire-old`  once every vnode runs a new-CA certificate and trusts the new CA: peers
//                    trust only the new CA, the old key is destroyed, old certificates are refused.
//
// Files are the material every signer reads (the controller home); the database records which CA
// is in which state, so `serve` (in this process or another) sees a step land and a restarted
// controller carries on where the rotation was. With a key-encryption key on PostgreSQL the
// database also keeps the keys, sealed (ca-store.ts): a step first brings this home up to date
// from it (the last step may have run on another controller) and then publishes what it made, in
// the same transaction as the rows; the other controllers take the files from there.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { createCertificateAuthority } from "../../common/pki/ca.ts";
import { renewControllerIdentity } from "./controller-certificate.ts";
import { createCrossCertificate } from "../../common/pki/cross-cert.ts";
import { writePrivateFile, writePublicFile } from "../../common/pki/files.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { caPin } from "../../common/pki/pin.ts";
import { bundlePem } from "../../common/pki/trust-bundle.ts";
import { CertificateAuthority } from "../db/entities/index.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { readCaFiles } from "./ca-files.ts";
import { caStatus } from "./ca-status.ts";
import type { Kek } from "./ca-seal.ts";
import { caRow, materializeCa, publishCa } from "./ca-store.ts";

const CONTROLLER_CERT_SECONDS = 365 * 24 * 3600;

/** Whether a rotation has begun and not been retired (previous.crt holds another CA than ca.crt). */
export function rotationInProgress(paths: HomePaths): boolean {
  if (!existsSync(paths.caPreviousCert)) return false;
  return caPin(readFileSync(paths.caPreviousCert, "utf8")) !== caPin(readFileSync(paths.caCert, "utf8"));
}

/**
 * The controller's certificate reissued by the CA now in ca.key/ca.crt, for the same names, with
 * a fresh key. Kept small and separate: controller-certificate renewal reuses it.
 */
export async function reissueControllerCertificate(
  em: SqlEntityManager,
  paths: HomePaths,
  controller: ControllerLifetime = {},
): Promise<{ serialHex: string; notAfter: Date }> {
  // One key/certificate unit in the home (generation + `current`), like every renewal; the
  // lifetime and name controller.json gives, as `cert renew-controller` uses.
  const issued = await renewControllerIdentity(em, paths, {
    validSeconds: controller.validSeconds ?? CONTROLLER_CERT_SECONDS,
    name: controller.name ?? "controller",
  });
  return { serialHex: issued.serialHex, notAfter: issued.notAfter };
}

/** The controller certificate's lifetime and name (controller.json); defaults when absent. */
export interface ControllerLifetime {
  validSeconds?: number;
  name?: string;
}

export interface RotationBegun {
  oldPin: string;
  newPin: string;
  newNotAfter: Date;
  controllerSerial: string;
}

export async function beginCaRotation(
  em: SqlEntityManager,
  paths: HomePaths,
  options: { validDays: number; controller?: ControllerLifetime; kek?: Kek },
): Promise<RotationBegun> {
  await materializeCa(em, paths, options.kek);
  if (rotationInProgress(paths))
    throw new NetservaError(
      "failed_precondition",
      "a CA rotation is already under way: finish it with `netserva-mail ca retire-old` (see `netserva-mail ca status`)",
    );
  const old = readCaFiles(paths);
  const oldInfo = inspectCertificate(old.caCertPem);
  // Same name, new key: the link certificate is then self-issued (see cross-cert.ts).
  const next = await createCertificateAuthority({ commonName: oldInfo.subjectCN, validDays: options.validDays });
  const link = createCrossCertificate({
    oldCaKeyPem: old.caKeyPem,
    oldCaCertPem: old.caCertPem,
    newCaKeyPem: next.keyPem,
    newCaCertPem: next.certPem,
  });
  // The old CA first, so a crash later leaves it recoverable (previous.* equal to ca.* means
  // "not begun", and `ca rotate` may run again).
  await writePrivateFile(paths.caPreviousKey, old.caKeyPem);
  await writePublicFile(paths.caPreviousCert, old.caCertPem);
  await writePublicFile(paths.caTrust, bundlePem([{ pem: next.certPem }, { pem: old.caCertPem }]));
  await writePublicFile(paths.caChain, bundlePem([{ pem: link }, { pem: old.caCertPem }]));
  await writePrivateFile(paths.caKey, next.keyPem);
  await writePublicFile(paths.caCert, next.certPem);
  const controller = await reissueControllerCertificate(em, paths, options.controller);
  if (options.kek) await publishCa(em, paths, options.kek);
  else {
    await caRow(em, old.caCertPem, "previous");
    await caRow(em, next.certPem, "active");
  }
  await em.flush();
  return {
    oldPin: caPin(old.caCertPem),
    newPin: caPin(next.certPem),
    newNotAfter: inspectCertificate(next.certPem).notAfter,
    controllerSerial: controller.serialHex,
  };
}

export interface Retired {
  retiredPin: string;
  /** Vnodes that were still on the old CA (only with force). */
  stranded: string[];
  /** Other certificates still from the old CA (monitors, other controllers): refused from now on. */
  warnings: string[];
}

export async function retireOldCa(
  em: SqlEntityManager,
  paths: HomePaths,
  options: { force: boolean; kek?: Kek },
): Promise<Retired> {
  await materializeCa(em, paths, options.kek);
  if (!rotationInProgress(paths))
    throw new NetservaError("failed_precondition", "no CA rotation is under way: `netserva-mail ca rotate` starts one");
  const status = await caStatus(em, paths);
  const waiting = status.vnodes.filter((v) => v.waitingFor !== null);
  const stranded = waiting.map((v) => `${v.vnode} (${v.waitingFor ?? ""})`);
  if (waiting.length > 0 && !options.force)
    throw new NetservaError(
      "failed_precondition",
      `${waiting.length} vnode${waiting.length === 1 ? "" : "s"} still depend${waiting.length === 1 ? "s" : ""} on the old CA: ${stranded.join(", ")}. ` +
        "Wait until `netserva-mail ca status` shows none (agents renew by themselves once connected), " +
        "or pass --force: those agents are then refused until re-enrolled with a new join token",
    );
  const warnings = status.oldCertificates
    .filter((c) => c.role !== "agent")
    .map((c) => `${c.role} ${c.identity} (${c.serial})`);
  const previousPem = readFileSync(paths.caPreviousCert, "utf8");
  const retiredPin = caPin(previousPem);
  const current = readFileSync(paths.caCert, "utf8");
  await writePublicFile(paths.caTrust, bundlePem([{ pem: current }]));
  // The old certificate is kept for the record; its key is destroyed: nothing may sign with it.
  const retiredDir = join(paths.root, "ca", "retired");
  mkdirSync(retiredDir, { recursive: true, mode: 0o700 });
  renameSync(paths.caPreviousCert, join(retiredDir, `${inspectCertificate(previousPem).serialHex}.crt`));
  rmSync(paths.caPreviousKey, { force: true });
  const row = await em.findOne(CertificateAuthority, { pin: retiredPin });
  if (row) {
    row.state = "retired";
    row.retiredAt = new Date();
    row.keySealed = null;
  }
  if (options.kek) await publishCa(em, paths, options.kek);
  await em.flush();
  return { retiredPin, stranded: options.force ? stranded : [], warnings };
}
