// What sc() needs to know about one daemon: how to run it without an init system, how to tell it
// is up, and which unit / OpenRC service stands for it. Rspamd and ClamAV add their own.
export interface Command {
  readonly file: string;
  readonly args: readonly string[];
}

export interface ServiceDefinition {
  readonly name: string;
  /** Used by the direct backend (no init system). */
  readonly direct: {
    readonly start: Command;
    readonly reload: Command;
    readonly stop: Command;
    readonly pidFile: string;
    /** Extra readiness check after the pid is alive (a socket answers, a port greets). */
    readonly ready?: () => Promise<boolean>;
  };
  /** systemd unit, e.g. "postfix.service"; private roots use netserva-<name>@<escaped root>.service. */
  readonly systemdUnit: string;
  /** OpenRC service name, e.g. "postfix"; private roots use a multiplexed "postfix.<instance>". */
  readonly openrcService: string;
}

export interface ServiceStatus {
  readonly name: string;
  readonly running: boolean;
  readonly pid?: number;
  readonly detail?: string;
}

/** A registry of definitions; sc() looks names up here so other daemons can join later. */
export interface ServiceRegistry {
  register(def: ServiceDefinition): void;
  get(name: string): ServiceDefinition;
  names(): string[];
}

export function createServiceRegistry(defs: readonly ServiceDefinition[] = []): ServiceRegistry {
  const byName = new Map(defs.map((d) => [d.name, d]));
  return {
    register: (def) => void byName.set(def.name, def),
    get(name) {
      const def = byName.get(name);
      if (!def) throw new Error(`unknown service ${name}`);
      return def;
    },
    names: () => [...byName.keys()],
  };
}
