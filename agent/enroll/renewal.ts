// Renews the agent's certificate at two thirds of its lifetime, or at once when asked (the CA
// rotated and ours is from the old one): a new key and CSR, signed by the controller over mutual
// TLS with the current certificate. The new identity is swapped into the running servers;
// established connections are not dropped. The trust bundle that comes back is installed too.
import { create } from "@bufbuild/protobuf";
import { RenewRequestSchema } from "../../common/gen/netserva/mail/v1/enrollment_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import { renewalPoint } from "../../common/pki/validity.ts";
import type { AgentHomePaths, AgentIdentity } from "../home/agent-home.ts";
import { writeIdentityPair } from "../home/identity-pair.ts";
import { createEnrollmentClient } from "./enrollment-client.ts";

export interface RenewalOptions {
  identity: AgentIdentity;
  paths: AgentHomePaths;
  log: Logger;
  /** The CAs the controller is verified against now. */
  trustPem(): string;
  onRenewed(certPem: string, keyPem: string, notAfter: Date): void;
  /** The controller's trust bundle, sent with the new certificate. */
  onTrust?(bundlePem: string, certPem: string): Promise<void>;
}

export interface Renewal {
  /** The certificate in use. */
  certPem(): string;
  /** Renews now (retrying as after a failure) instead of at two thirds of the lifetime. */
  renewNow(): void;
  stop(): void;
}

export function renewalDelay(notBefore: Date, notAfter: Date, now = Date.now()): number {
  return Math.max(0, renewalPoint(notBefore, notAfter).getTime() - now);
}

export function scheduleRenewal(options: RenewalOptions): Renewal {
  let current = { certPem: options.identity.certPem, keyPem: options.identity.keyPem };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let inFlight = false;

  const renew = async (): Promise<void> => {
    // node-forge (~6 MB resident) loads only when a certificate is renewed, not in every idle agent.
    const { createKeyAndCsr } = await import("../../common/pki/keys.ts");
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName: options.identity.config.vnode });
    const client = createEnrollmentClient({
      address: options.identity.config.controller,
      caPem: options.trustPem(),
      certPem: current.certPem,
      keyPem: current.keyPem,
    });
    try {
      const response = await client.renew(create(RenewRequestSchema, { csrPem }));
      const info = inspectCertificate(response.certificatePem);
      if (info.identity !== options.identity.config.vnode)
        throw new NetservaError("internal", "renewed certificate names another vnode");
      // Trust first: the new certificate may come from a CA this agent does not trust yet.
      if (response.caBundlePem && options.onTrust) await options.onTrust(response.caBundlePem, response.certificatePem);
      await writeIdentityPair(options.paths.root, { keyPem, certPem: response.certificatePem });
      current = { certPem: response.certificatePem, keyPem };
      options.onRenewed(response.certificatePem, keyPem, info.notAfter);
      options.log.info("certificate renewed", { not_after: info.notAfter.toISOString() });
    } finally {
      client.close();
    }
  };

  const attempt = (): void => {
    if (stopped || inFlight) return;
    inFlight = true;
    renew().then(
      () => {
        inFlight = false;
        plan();
      },
      (error: unknown) => {
        inFlight = false;
        options.log.warn("certificate renewal failed; retrying", { error: NetservaError.from(error).message });
        if (stopped) return;
        const left = inspectCertificate(current.certPem).notAfter.getTime() - Date.now();
        timer = setTimeout(attempt, Math.max(500, Math.min(30_000, left / 10)));
        timer.unref();
      },
    );
  };

  const plan = (): void => {
    if (stopped) return;
    const info = inspectCertificate(current.certPem);
    const delay = renewalDelay(info.notBefore, info.notAfter);
    timer = setTimeout(attempt, Math.min(delay, 2 ** 31 - 1));
    timer.unref();
  };
  plan();
  return {
    certPem: () => current.certPem,
    renewNow() {
      if (stopped || inFlight) return;
      if (timer) clearTimeout(timer);
      attempt();
    },
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
