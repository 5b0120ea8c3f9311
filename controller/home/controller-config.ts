// controller.json: settings chosen at `init`, validated loudly when read.
import { readFileSync } from "node:fs";
import { NetservaError } from "../../common/errors.ts";

export interface ControllerConfig {
  name: string;
  /** Where `serve` listens for enrollment (host:port). */
  listen: string;
  /** Lifetime of agent certificates in seconds (renewed at two thirds). */
  agentCertificateSeconds: number;
  /** Lifetime of join tokens in seconds. */
  joinTokenSeconds: number;
  /** Lifetime of the controller's own certificate in seconds (renewed at two thirds). */
  controllerCertificateSeconds: number;
  /** Lifetime of the mail TLS certificates the CA issues for vnodes, in seconds. */
  mailTlsCertificateSeconds: number;
  /** First retry of a failed ACME order, seconds; each further failure doubles it. */
  acmeRetrySeconds: number;
  /** The longest wait between ACME retries, seconds. */
  acmeRetryMaxSeconds: number;
}

export const defaultConfig: ControllerConfig = {
  name: "controller",
  listen: "127.0.0.1:7443",
  agentCertificateSeconds: 30 * 24 * 3600,
  joinTokenSeconds: 3600,
  controllerCertificateSeconds: 365 * 24 * 3600,
  mailTlsCertificateSeconds: 397 * 24 * 3600,
  acmeRetrySeconds: 300,
  acmeRetryMaxSeconds: 6 * 3600,
};

export function readControllerConfig(path: string): ControllerConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new NetservaError(
      "failed_precondition",
      `controller home not initialised (${path}): run \`netserva-mail init\` first`,
      { cause: error },
    );
  }
  const value = { ...defaultConfig, ...(parsed as Partial<ControllerConfig>) };
  for (const key of [
    "agentCertificateSeconds",
    "joinTokenSeconds",
    "controllerCertificateSeconds",
    "mailTlsCertificateSeconds",
    "acmeRetrySeconds",
    "acmeRetryMaxSeconds",
  ] as const) {
    if (!Number.isInteger(value[key]) || value[key] < 2)
      throw new NetservaError("invalid_argument", `${path}: ${key} must be an integer >= 2`, { field: key });
  }
  if (typeof value.name !== "string" || !/^[a-z0-9-]{1,63}$/.test(value.name))
    throw new NetservaError("invalid_argument", `${path}: name must be a DNS label`, { field: "name" });
  return value;
}
