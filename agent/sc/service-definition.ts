// What sc() needs to know about one daemon: how to run it without an init system, how to tell it
// is up, and which unit / OpenRC service stands for it. Postfix and Dovecot are driven by their
// own commands; Rspamd and clamd by a DirectDaemon object the agent implements (they daemonise
// themselves and need a readiness probe and signals no single command expresses).
export interface Command {
  readonly file: string;
  readonly args: readonly string[];
}

/** A daemon the direct backend drives through methods instead of commands (rspamd, clamd). */
export interface DirectDaemon {
  start(): Promise<void>;
  reload(): Promise<void>;
  stop(): Promise<void>;
  status(): Promise<{ readonly running: boolean; readonly pid?: number }>;
}

interface UnitNames {
  readonly name: string;
  /** systemd unit, e.g. "postfix.service"; private roots use netserva-<name>@<escaped root>.service. */
  readonly systemdUnit: string;
  /**
   * The unit whose state tells whether the daemon runs, when not systemdUnit itself: Debian's
   * postfix.service is a oneshot that stays "active (exited)" whatever its postfix@-.service does.
   * Used only where that unit exists.
   */
  readonly systemdStatusUnit?: string;
  /** OpenRC service name, e.g. "postfix"; private roots use a multiplexed "postfix.<instance>". */
  readonly openrcService: string;
}

export interface CommandServiceDefinition extends UnitNames {
  /** Used by the direct backend (no init system). */
  readonly direct: {
    readonly start: Command;
    readonly reload: Command;
    readonly stop: Command;
    readonly pidFile: string;
    /** Extra readiness check after the pid is alive (a socket answers, a port greets). */
    readonly ready?: () => Promise<boolean>;
  };
}

export interface DaemonServiceDefinition extends UnitNames {
  /** Used by the direct backend instead of commands. */
  readonly daemon: DirectDaemon;
}

export type ServiceDefinition = CommandServiceDefinition | DaemonServiceDefinition;

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
  has(name: string): boolean;
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
    has: (name) => byName.has(name),
    names: () => [...byName.keys()],
  };
}
