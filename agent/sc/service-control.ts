// sc(): start, reload, stop and ask about the mail daemons through whichever backend the vnode has.
import { existsSync } from "node:fs";
import type { VnodePaths } from "../paths.ts";
import { NetservaError } from "../../common/errors.ts";
import { createDirectBackend } from "./direct-backend.ts";
import { createOpenrcBackend, createSystemdBackend } from "./init-backends.ts";
import { dovecotService, postfixService } from "./mail-services.ts";
import {
  createServiceRegistry,
  type ServiceDefinition,
  type ServiceRegistry,
  type ServiceStatus,
} from "./service-definition.ts";

export type InitKind = "systemd" | "openrc" | "direct";

export interface ServiceControlOptions {
  readonly kind: InitKind;
  readonly paths: VnodePaths;
  /** Direct backend only: command prefix, e.g. ["ip", "netns", "exec", "ns1"]. */
  readonly wrap?: readonly string[];
  readonly deadlineMs?: number;
}

export interface ServiceControl {
  readonly kind: InitKind;
  readonly registry: ServiceRegistry;
  start(name: string): Promise<void>;
  reload(name: string): Promise<void>;
  /** Stop then start (clamd has no config reload; Postfix needs one for some main.cf changes). */
  restart(name: string): Promise<void>;
  stop(name: string): Promise<void>;
  /** Start it at boot too (systemctl enable, rc-update add … default); nothing without an init system. */
  enable(name: string): Promise<void>;
  status(name: string): Promise<ServiceStatus>;
}

export function detectInitSystem(exists: (path: string) => boolean = existsSync): InitKind {
  if (exists("/run/systemd/system")) return "systemd";
  if (exists("/sbin/openrc-run") || exists("/run/openrc")) return "openrc";
  return "direct";
}

interface Backend {
  start(def: ServiceDefinition): Promise<void>;
  reload(def: ServiceDefinition): Promise<void>;
  restart(def: ServiceDefinition): Promise<void>;
  stop(def: ServiceDefinition): Promise<void>;
  enable(def: ServiceDefinition): Promise<void>;
  status(def: ServiceDefinition): Promise<ServiceStatus>;
}

/** Without an init system a restart is stop then start, and nothing starts at boot. */
function directWithRestart(b: ReturnType<typeof createDirectBackend>): Backend {
  return {
    ...b,
    async restart(def) {
      await b.stop(def);
      await b.start(def);
    },
    enable: async () => undefined,
  };
}

export function createServiceControl(options: ServiceControlOptions): ServiceControl {
  const registry = createServiceRegistry([postfixService(options.paths), dovecotService(options.paths)]);
  const backend: Backend =
    options.kind === "systemd"
      ? createSystemdBackend()
      : options.kind === "openrc"
        ? createOpenrcBackend()
        : directWithRestart(
            createDirectBackend({
              ...(options.wrap ? { wrap: options.wrap } : {}),
              ...(options.deadlineMs ? { deadlineMs: options.deadlineMs } : {}),
            }),
          );

  // Every failure becomes `unavailable` naming the service, with the daemon's own words.
  const guard = async <T>(verb: string, name: string, act: (def: ServiceDefinition) => Promise<T>): Promise<T> => {
    const def = registry.get(name);
    try {
      return await act(def);
    } catch (err) {
      throw new NetservaError(
        "unavailable",
        `${verb} ${name} failed: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  };

  return {
    kind: options.kind,
    registry,
    start: (name) => guard("start", name, (d) => backend.start(d)),
    reload: (name) => guard("reload", name, (d) => backend.reload(d)),
    restart: (name) => guard("restart", name, (d) => backend.restart(d)),
    stop: (name) => guard("stop", name, (d) => backend.stop(d)),
    enable: (name) => guard("enable", name, (d) => backend.enable(d)),
    status: (name) => guard("status", name, (d) => backend.status(d)),
  };
}
