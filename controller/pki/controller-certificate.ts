// The controller's own certificate: the one it presents to agents on the gRPC channel and on the
// enrollment endpoint. Kept as one key/certificate unit in the home (identity/<n>/controller.key +
// controller.crt, made live by the `current` symlink; see common/pki/identity-pair.ts) and
// renewed by the CA when less than a third of its lifetime is left. A renewal keeps the names of
// the certificate it replaces, so agents that dial the controller by any of them carry on.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { issueCertificate } from "../../common/pki/ca.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { loadIdentityPair, writeIdentityPair } from "../../common/pki/identity-pair.ts";
import type { IdentityPair, LoadedPair, PairNames } from "../../common/pki/identity-pair.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { renewalPoint } from "../../common/pki/validity.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { readSigningCa } from "./ca-files.ts";
import { recordCertificate } from "./certificate-records.ts";

/** Default lifetime of the controller's certificate (controller.json controllerCertificateSeconds). */
export const CONTROLLER_CERTIFICATE_SECONDS = 365 * 24 * 3600;

export function controllerPairNames(paths: HomePaths): PairNames {
  return {
    home: "controller home",
    key: "controller.key",
    cert: "controller.crt",
    remedy: `issue a new one with \`netserva-mail cert renew-controller --home ${paths.root}\``,
  };
}

/** The live key and certificate (falls back to the newest pair whose key matches its certificate). */
export function loadControllerIdentity(paths: HomePaths): LoadedPair {
  return loadIdentityPair(paths.root, controllerPairNames(paths));
}

/** When a certificate should be replaced: once less than a third of its lifetime is left. */
export function controllerRenewAt(certPem: string): Date {
  const { notBefore, notAfter } = inspectCertificate(certPem);
  return renewalPoint(notBefore, notAfter);
}

export function controllerCertificateDue(certPem: string, now = Date.now()): boolean {
  return controllerRenewAt(certPem).getTime() <= now;
}

export interface ControllerCertificateNames {
  identity: string;
  dnsNames: string[];
  ipAddresses: string[];
}

/** The names of the first certificate (`init`): the controller's name, loopback and this host. */
export function defaultControllerNames(name: string): ControllerCertificateNames {
  return { identity: name, dnsNames: ["localhost", hostname()], ipAddresses: ["127.0.0.1", "::1"] };
}

function namesOf(certPem: string): ControllerCertificateNames | undefined {
  const info = inspectCertificate(certPem);
  if (info.role !== "controller" || !info.identity) return undefined;
  return { identity: info.identity, dnsNames: info.dnsNames, ipAddresses: info.ipAddresses };
}

/** The certificate on disk even when its key is lost: its names are still the ones to keep. */
function lastCertificate(paths: HomePaths): string | undefined {
  try {
    return loadControllerIdentity(paths).certPem;
  } catch {
    try {
      return readFileSync(paths.cert, "utf8");
    } catch {
      return undefined;
    }
  }
}

export interface IssuedControllerIdentity extends IdentityPair {
  notAfter: Date;
  serialHex: string;
  generation: number;
}

/**
 * Issues a new key and certificate for the controller and makes them live in the home as one
 * unit. Recorded in the CA's ledger first: a crash before the files are written leaves an unused
 * ledger row, never a live certificate the ledger does not know (and so could not revoke).
 */
export async function issueControllerIdentity(
  em: SqlEntityManager,
  paths: HomePaths,
  options: { validSeconds: number; names: ControllerCertificateNames },
): Promise<IssuedControllerIdentity> {
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: options.names.identity });
  const issued = issueCertificate({
    ...readSigningCa(paths),
    csrPem,
    role: "controller",
    identity: options.names.identity,
    dnsNames: options.names.dnsNames,
    ipAddresses: options.names.ipAddresses,
    validSeconds: options.validSeconds,
  });
  await recordCertificate(em, { pem: issued.certPem, vnodeId: null });
  const generation = await writeIdentityPair(paths.root, controllerPairNames(paths), {
    keyPem,
    certPem: issued.certPem,
  });
  return { keyPem, certPem: issued.certPem, notAfter: issued.notAfter, serialHex: issued.serialHex, generation };
}

/** Replaces the controller's certificate, keeping its names (or the defaults for `name`). */
export async function renewControllerIdentity(
  em: SqlEntityManager,
  paths: HomePaths,
  options: { validSeconds: number; name: string },
): Promise<IssuedControllerIdentity> {
  const last = lastCertificate(paths);
  const names = (last !== undefined ? namesOf(last) : undefined) ?? defaultControllerNames(options.name);
  return issueControllerIdentity(em, paths, { validSeconds: options.validSeconds, names });
}
