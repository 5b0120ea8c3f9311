// The controller daemon's own counters, in Prometheus text format (`netserva-mail metrics`
// prints them through the admin socket). One registry per daemon: tests run several in one
// process.
import { Counter, Gauge, Registry } from "prom-client";
import type { LastResortKind } from "../../common/process/last-resort.ts";
import { signatureOperations } from "../../common/pki/signature-count.ts";

import type { Refusal } from "../enrollment/enrollment-server.ts";

export interface ControllerMetrics {
  readonly registry: Registry;
  lastResort(kind: LastResortKind): void;
  adminClientError(): void;
  enrollmentRefused(method: "enroll" | "renew", reason: Refusal): void;
  text(): Promise<string>;
}

export function createControllerMetrics(): ControllerMetrics {
  const registry = new Registry();
  const lastResort = new Counter({
    name: "netserva_controller_last_resort_total",
    help: "Errors no connection handler caught (process-level last resort); should stay 0.",
    labelNames: ["kind"],
    registers: [registry],
  });
  for (const kind of ["uncaught_exception", "unhandled_rejection"]) lastResort.inc({ kind }, 0);
  const adminErrors = new Counter({
    name: "netserva_controller_admin_client_errors_total",
    help: "Admin-socket connections that ended with an error (a client gone mid-command).",
    registers: [registry],
  });
  const refused = new Counter({
    name: "netserva_controller_enrollment_refused_total",
    help: "Enroll and Renew requests refused, by reason.",
    labelNames: ["method", "reason"],
    registers: [registry],
  });
  new Gauge({
    name: "netserva_controller_signature_operations",
    help: "RSA signature operations (CSR verifications and certificates signed) since the process started.",
    labelNames: ["operation"],
    registers: [registry],
    collect() {
      this.set({ operation: "verify" }, signatureOperations.verify);
      this.set({ operation: "sign" }, signatureOperations.sign);
    },
  });
  return {
    registry,
    lastResort: (kind) => lastResort.inc({ kind }),
    adminClientError: () => adminErrors.inc(),
    enrollmentRefused: (method, reason) => refused.inc({ method, reason }),
    text: () => registry.metrics(),
  };
}
