// Keeps the running controller's certificate fresh: every check, the pair live in the home is
// compared with the one the servers present (a pair written by `cert renew-controller` from
// another process is taken up), and a certificate with less than a third of its lifetime left is
// renewed. Whatever changes is handed to `apply`, which swaps it into the running servers.
import { NetservaError } from "../../common/errors.ts";
import type { IdentityPair } from "../../common/pki/identity-pair.ts";
import { readFileSync } from "node:fs";
import { inspectCertificate, verifyIssuedBy } from "../../common/pki/inspect.ts";
import type { Logger } from "../../common/log.ts";
import type { Database } from "../db/open-database.ts";
import type { HomePaths } from "../home/home-paths.ts";
import { audited } from "../audit/audit.ts";
import { controllerCertificateDue, loadControllerIdentity, renewControllerIdentity } from "./controller-certificate.ts";

export interface ControllerRenewalOptions {
  paths: HomePaths;
  db: Database;
  /** Lifetime of a renewed certificate, and the name used when none can be read from the old one. */
  validSeconds: number;
  name: string;
  log: Logger;
  /** The pair the servers present now. */
  initial: IdentityPair;
  /** How often to check (default hourly; 0 = only when asked). */
  intervalMs?: number;
  /** Swaps a pair into the running servers (with the CA material in the home as it is now). */
  apply(pair: IdentityPair): Promise<void>;
  /** Counts renewals (the controller's metrics). */
  onRenewal?(result: "ok" | "failed"): void;
}

export interface ControllerRenewal {
  current(): IdentityPair;
  /** Takes up a changed pair from the home and renews a due certificate. */
  check(): Promise<void>;
  /** Swaps the home's pair and CA material in again, changed or not (a CA rotation step). */
  reload(): Promise<void>;
  /** Renews now, due or not (`cert renew-controller`, which records it in the command log). */
  renew(reason?: string): Promise<RenewedIdentity>;
  stop(): void;
}

export const CONTROLLER_CHECK_MS = 3600_000;

/** Whether our certificate was issued by the CA that signs now (ca/ca.crt). */
export function fromSigningCa(paths: HomePaths, certPem: string): boolean {
  return verifyIssuedBy(certPem, readFileSync(paths.caCert, "utf8"));
}

export type RenewedIdentity = IdentityPair & { notAfter: Date; serialHex: string };

/** Start-up: the live pair, renewed first when it is due or none in the home matches. */
export async function loadOrRenewControllerIdentity(
  options: Pick<ControllerRenewalOptions, "paths" | "db" | "validSeconds" | "name" | "log">,
): Promise<IdentityPair> {
  let pair: IdentityPair | undefined;
  try {
    const loaded = loadControllerIdentity(options.paths);
    for (const repair of loaded.repairs) options.log.warn("controller certificate repaired", { repair });
    pair = loaded;
  } catch (error) {
    options.log.warn("no usable controller certificate in the home", { error: NetservaError.from(error).message });
  }
  // A certificate from a CA other than the signing one (a rotation made while this controller was
  // down, on another controller) is replaced at start too.
  if (pair && !controllerCertificateDue(pair.certPem) && fromSigningCa(options.paths, pair.certPem)) return pair;
  const em = options.db.em().fork();
  const issued = await audited(
    em,
    { actor: "controller", command: "cert renew-controller", args: { reason: "start" } },
    () => renewControllerIdentity(em, options.paths, { validSeconds: options.validSeconds, name: options.name }),
  );
  options.log.info("controller certificate renewed", {
    serial: issued.serialHex,
    not_after: issued.notAfter.toISOString(),
  });
  return issued;
}

export function startControllerRenewal(options: ControllerRenewalOptions): ControllerRenewal {
  let current = options.initial;
  /** One check or renewal at a time: two would issue two certificates. */
  let queue: Promise<unknown> = Promise.resolve();
  const serialize = <T>(work: () => Promise<T>): Promise<T> => {
    const next = queue.then(work, work);
    queue = next.catch(() => undefined);
    return next;
  };

  const adopt = async (pair: IdentityPair, why: string): Promise<void> => {
    current = { certPem: pair.certPem, keyPem: pair.keyPem };
    await options.apply(current);
    const info = inspectCertificate(pair.certPem);
    options.log.info("controller certificate in use", {
      reason: why,
      serial: info.serialHex,
      not_after: info.notAfter.toISOString(),
    });
  };

  /** Automatic renewals are recorded here as the controller's; asked ones by the command that asked. */
  const renewNow = async (reason: string): Promise<RenewedIdentity> => {
    const em = options.db.em().fork();
    const work = (): Promise<RenewedIdentity> =>
      renewControllerIdentity(em, options.paths, { validSeconds: options.validSeconds, name: options.name });
    try {
      const issued =
        reason === "asked"
          ? await work()
          : await audited(em, { actor: "controller", command: "cert renew-controller", args: { reason } }, work);
      await adopt(issued, reason);
      options.onRenewal?.("ok");
      return issued;
    } catch (error) {
      options.onRenewal?.("failed");
      throw error;
    }
  };

  const check = (): Promise<void> =>
    serialize(async () => {
      let onDisk: IdentityPair | undefined;
      try {
        onDisk = loadControllerIdentity(options.paths);
      } catch (error) {
        // No matching pair left in the home: the one in memory still works; renewing writes a good one.
        options.log.warn("controller certificate in the home is unusable", {
          error: NetservaError.from(error).message,
        });
      }
      if (onDisk && onDisk.certPem !== current.certPem) await adopt(onDisk, "changed in the home");
      if (!onDisk || controllerCertificateDue(current.certPem)) await renewNow(onDisk ? "due" : "unusable");
    });

  const interval = options.intervalMs ?? CONTROLLER_CHECK_MS;
  const timer =
    interval > 0
      ? setInterval(
          () =>
            void check().catch((error: unknown) =>
              options.log.warn("controller certificate renewal failed; retrying at the next check", {
                error: NetservaError.from(error).message,
              }),
            ),
          interval,
        )
      : undefined;
  timer?.unref();
  return {
    current: () => current,
    check,
    reload: () =>
      serialize(async () => {
        let pair = current;
        try {
          pair = loadControllerIdentity(options.paths);
        } catch (error) {
          options.log.warn("controller certificate in the home is unusable; keeping the one in use", {
            error: NetservaError.from(error).message,
          });
        }
        await adopt(pair, "reloaded");
      }),
    renew: (reason = "asked") => serialize(() => renewNow(reason)),
    stop: () => clearInterval(timer),
  };
}
