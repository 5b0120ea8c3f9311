// Renews the agent's certificate at two thirds of its lifetime: a new key and CSR, signed by the
// controller over mutual TLS with the current certificate. The new identity is swapped into the
// running servers; established connections are not dropped.
import { create } from "@bufbuild/protobuf";
import { RenewRequestSchema } from "../../common/gen/netserva/mail/v1/enrollment_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import type { AgentHomePaths, AgentIdentity } from "../home/agent-home.ts";
import { writeIdentityPair } from "../home/identity-pair.ts";
import { createEnrollmentClient } from "./enrollment-client.ts";

export interface RenewalOptions {
  identity: AgentIdentity;
  paths: AgentHomePaths;
  log: Logger;
  onRenewed(certPem: string, keyPem: string, notAfter: Date): void;
}

export interface Renewal {
  stop(): void;
}

export function renewalDelay(notBefore: Date, notAfter: Date, now = Date.now()): number {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  return Math.max(0, notBefore.getTime() + (lifetime * 2) / 3 - now);
}

export function scheduleRenewal(options: RenewalOptions): Renewal {
  let current = { certPem: options.identity.certPem, keyPem: options.identity.keyPem };
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const renew = async (): Promise<void> => {
    // node-forge (~6 MB resident) loads only when a certificate is renewed, not in every idle agent.
    const { createKeyAndCsr } = await import("../../common/pki/keys.ts");
    const { keyPem, csrPem } = await createKeyAndCsr({ commonName: options.identity.config.vnode });
    const client = createEnrollmentClient({
      address: options.identity.config.controller,
      caPem: options.identity.caPem,
      certPem: current.certPem,
      keyPem: current.keyPem,
    });
    try {
      const response = await client.renew(create(RenewRequestSchema, { csrPem }));
      const info = inspectCertificate(response.certificatePem);
      if (info.identity !== options.identity.config.vnode)
        throw new NetservaError("internal", "renewed certificate names another vnode");
      await writeIdentityPair(options.paths.root, { keyPem, certPem: response.certificatePem });
      current = { certPem: response.certificatePem, keyPem };
      options.onRenewed(response.certificatePem, keyPem, info.notAfter);
      options.log.info("certificate renewed", { not_after: info.notAfter.toISOString() });
    } finally {
      client.close();
    }
  };

  const plan = (): void => {
    if (stopped) return;
    const info = inspectCertificate(current.certPem);
    const delay = renewalDelay(info.notBefore, info.notAfter);
    timer = setTimeout(
      () => {
        renew().then(plan, (error: unknown) => {
          options.log.warn("certificate renewal failed; retrying", { error: NetservaError.from(error).message });
          const left = inspectCertificate(current.certPem).notAfter.getTime() - Date.now();
          timer = setTimeout(() => void renew().then(plan, () => plan()), Math.max(500, Math.min(30_000, left / 10)));
        });
      },
      Math.min(delay, 2 ** 31 - 1),
    );
    timer.unref();
  };
  plan();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
