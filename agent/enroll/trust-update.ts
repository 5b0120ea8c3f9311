// What the agent does with a trust bundle from the controller (UpdateTrust, or a renewal's
// answer): check it, install it, and renew its own certificate at once when the CA that issues
// certificates now did not issue ours (a CA rotation has begun).
import { invalid } from "../../common/errors.ts";
import type { Logger } from "../../common/log.ts";
import { parseCaPin } from "../../common/pki/pin.ts";
import { issuerIn, readTrustBundle } from "../../common/pki/trust-bundle.ts";
import type { TrustStore } from "../home/trust-store.ts";

export interface TrustUpdate {
  /** Pushed by a controller: `callerDer` is its certificate, which the bundle must still accept. */
  push(input: { bundlePem: string; issuingPin: string; callerDer: Uint8Array }): Promise<{
    pins: string[];
    renewing: boolean;
  }>;
  /** Came with a renewed certificate, which the bundle must accept. */
  fromRenewal(bundlePem: string, certPem: string): Promise<void>;
}

export function createTrustUpdate(options: {
  store: TrustStore;
  log: Logger;
  ownCertPem(): string;
  renewNow(): void;
}): TrustUpdate {
  const install = async (bundlePem: string, mustAccept: Uint8Array | string, what: string): Promise<string[]> => {
    const cas = readTrustBundle(bundlePem, "ca_bundle_pem");
    // A bundle that would refuse the controller talking to us would lock the vnode out.
    if (!issuerIn(mustAccept, cas)) throw invalid("ca_bundle_pem", `does not include the CA of ${what}`);
    if (await options.store.replace(cas))
      options.log.info("trusted CAs replaced", { pins: cas.map((ca) => ca.pin).join(" ") });
    return cas.map((ca) => ca.pin);
  };
  return {
    async push({ bundlePem, issuingPin, callerDer }) {
      const pin = parseCaPin(issuingPin, "issuing_ca_pin");
      const cas = readTrustBundle(bundlePem, "ca_bundle_pem");
      if (!cas.some((ca) => ca.pin === pin)) throw invalid("issuing_ca_pin", "must be the pin of a CA in the bundle");
      const pins = await install(bundlePem, callerDer, "the calling controller's certificate");
      const renewing = issuerIn(options.ownCertPem(), cas)?.pin !== pin;
      if (renewing) {
        options.log.info("certificate is not from the issuing CA; renewing now", { issuing_ca: pin });
        options.renewNow();
      }
      return { pins, renewing };
    },
    async fromRenewal(bundlePem, certPem) {
      await install(bundlePem, certPem, "the renewed certificate");
    },
  };
}
