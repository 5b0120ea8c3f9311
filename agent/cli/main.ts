// The `netserva-mail-agent` command line: `enroll` and `serve`. It loads only the agent's own
// modules (and common/), never the controller's: a vnode runs this and nothing else.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { NetservaError, invalid } from "../../common/errors.ts";
import { EXIT, exitCodeFor } from "../../common/exit-codes.ts";

export interface AgentCliIo {
  out(text: string): void;
  err(text: string): void;
}

interface Flag {
  readonly name: string;
  readonly value?: string;
  readonly help: string;
  readonly required?: boolean;
  readonly default?: string;
}

interface Subcommand {
  readonly summary: string;
  readonly flags: readonly Flag[];
  run(values: Values, io: AgentCliIo): Promise<void>;
}

type Values = Record<string, string | boolean | undefined>;

const PROGRAM = "netserva-mail-agent";

const INIT_KINDS = ["systemd", "openrc", "direct"] as const;
type InitKind = (typeof INIT_KINDS)[number];

function text(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

function flag(values: Values, name: string): boolean {
  return values[name] === true;
}

function initKind(value: string | undefined): InitKind | undefined {
  if (value === undefined) return undefined;
  const kind = INIT_KINDS.find((k) => k === value);
  if (!kind) throw invalid("init", `must be ${INIT_KINDS.join(", ")}`);
  return kind;
}

function usageIntervalMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^[0-9]{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(ms >= 1000)) throw invalid("usage-interval", "must be a whole number of milliseconds, at least 1000");
  return ms;
}

const enroll: Subcommand = {
  summary: "create this vnode's key, have the controller sign it, store the certificate",
  flags: [
    { name: "controller", value: "host:port", help: "the controller's enrollment address", required: true },
    { name: "token", value: "token", help: "the join token from `netserva-mail vnode add` (visible in ps)" },
    { name: "token-file", value: "file", help: "read the join token from this file instead (- for stdin)" },
    { name: "home", value: "dir", help: "the agent's home directory", required: true },
  ],
  async run(values, io) {
    const inline = text(values, "token");
    const file = text(values, "token-file");
    if ((inline === undefined) === (file === undefined)) throw usage("enroll: give one of --token or --token-file");
    const [{ enrollThisAgent }, { agentHomePaths }, { AGENT_VERSION }, { readTokenFile }] = await Promise.all([
      import("../enroll/enroll.ts"),
      import("../home/agent-home.ts"),
      import("../version.ts"),
      import("../enroll/token-file.ts"),
    ]);
    const result = await enrollThisAgent({
      controller: text(values, "controller") ?? "",
      token: file === undefined ? (inline ?? "") : readTokenFile(file),
      paths: agentHomePaths(text(values, "home") ?? ""),
      version: AGENT_VERSION,
    });
    io.out(`enrolled as vnode ${result.vnode}; certificate valid until ${result.notAfter.toISOString()}\n`);
  },
};

const serve: Subcommand = {
  summary: "serve the agent over mutual-TLS gRPC (and metrics over HTTPS)",
  flags: [
    { name: "home", value: "dir", help: "the agent's home directory", required: true },
    { name: "listen", value: "host:port", help: "gRPC listen address", default: "0.0.0.0:7444" },
    { name: "metrics-listen", value: "host:port", help: "HTTPS /metrics listen address (off when absent)" },
    { name: "mail", help: "manage the vnode's mail daemons (files under / unless --root)" },
    { name: "root", value: "dir", help: "manage mail under this root instead of / (implies --mail)" },
    { name: "mail-listen", value: "addresses", help: "comma-separated addresses the mail daemons listen on" },
    { name: "init", value: "kind", help: "sc() backend: systemd | openrc | direct (detected by default)" },
    { name: "no-auth-penalty", help: "test instances: no Dovecot delay after a failed login" },
    { name: "filter-offline", help: "no resolver on this vnode: turn off Rspamd's DNS-bound modules and greylisting" },
    { name: "filter-cache", value: "dir", help: "shared Rspamd hyperscan cache (saves ~10 s per cold start)" },
    {
      name: "clamav-test-signatures",
      help: "tests and demos only: an EICAR-only ClamAV database (no signature download)",
    },
    { name: "usage-interval", value: "ms", help: "how often mailbox usage is rescanned on disk (default 30000)" },
    {
      name: "sysadm-db",
      value: "file",
      help: "NetServa's sysadm DB (default /var/lib/sqlite/sysadm/sysadm.db under the root): present = hands off until adopted",
    },
  ],
  async run(values, io) {
    const root = text(values, "root");
    const mailListen = text(values, "mail-listen");
    const init = initKind(text(values, "init"));
    const interval = usageIntervalMs(text(values, "usage-interval"));
    const metricsListen = text(values, "metrics-listen");
    const mail =
      flag(values, "mail") || root !== undefined
        ? {
            root: root ?? "/",
            ...(mailListen ? { listen: mailListen.split(",").map((a) => a.trim()) } : {}),
            ...(init ? { initKind: init } : {}),
            ...(flag(values, "no-auth-penalty") ? { authPenalty: false } : {}),
            ...(interval !== undefined ? { usageIntervalMs: interval } : {}),
            ...(text(values, "sysadm-db") ? { sysadmDb: resolve(text(values, "sysadm-db") ?? "") } : {}),
            filter: {
              ...(flag(values, "filter-offline") ? { disableNetworkModules: true, greylist: false as const } : {}),
              ...(text(values, "filter-cache") ? { hsCacheDir: text(values, "filter-cache") } : {}),
              ...(flag(values, "clamav-test-signatures") ? { clamavTestSignatures: true } : {}),
            },
          }
        : undefined;
    const [{ startAgentDaemon }, { createLogger }, { waitForSignal }, { armKillPoints }] = await Promise.all([
      import("../agent-daemon.ts"),
      import("../../common/log.ts"),
      import("../../common/signals.ts"),
      import("../apply/kill-points.ts"),
    ]);
    // Crash tests only (agent/apply/kill-points.ts): unset, every kill point is a no-op.
    armKillPoints({ killAt: process.env["NETSERVA_AGENT_KILL_AT"], failAt: process.env["NETSERVA_AGENT_FAIL_AT"] });
    const daemon = await startAgentDaemon({
      home: text(values, "home") ?? "",
      listen: text(values, "listen") ?? "0.0.0.0:7444",
      ...(metricsListen ? { metricsListen } : {}),
      log: createLogger({ fields: { component: "agent" } }),
      ...(mail ? { mail } : {}),
      lastResort: true,
    });
    io.err(
      `agent ${daemon.vnode} listening on port ${daemon.port}${daemon.metricsPort ? `, metrics on ${daemon.metricsPort}` : ""}\n`,
    );
    await waitForSignal();
    await daemon.close();
  },
};

const SUBCOMMANDS: Record<string, Subcommand> = { enroll, serve };

function flagLine(f: Flag): string {
  const left = `  --${f.name}${f.value ? ` <${f.value}>` : ""}`;
  const notes = [f.required ? "required" : "", f.default ? `default: ${f.default}` : ""].filter(Boolean).join(", ");
  return `${left.padEnd(34)} ${f.help}${notes ? ` (${notes})` : ""}\n`;
}

function programHelp(): string {
  return (
    `Usage: ${PROGRAM} <command> [options]\n\nthe agent on a vnode\n\nCommands:\n` +
    Object.entries(SUBCOMMANDS)
      .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}\n`)
      .join("") +
    `\nRun \`${PROGRAM} <command> --help\` for its options.\n`
  );
}

function commandHelp(name: string, command: Subcommand): string {
  return `Usage: ${PROGRAM} ${name} [options]\n\n${command.summary}\n\nOptions:\n${command.flags.map(flagLine).join("")}`;
}

function usage(message: string): NetservaError {
  return new NetservaError("usage", message);
}

function parse(name: string, command: Subcommand, args: string[]): Values | "help" {
  let values: Values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: "boolean", short: "h" },
        ...Object.fromEntries(
          command.flags.map((f) => [f.name, { type: f.value ? ("string" as const) : ("boolean" as const) }]),
        ),
      },
    }));
  } catch (reason) {
    throw usage(`${name}: ${reason instanceof Error ? reason.message : String(reason)}`);
  }
  if (values["help"] === true) return "help";
  for (const f of command.flags) {
    if (f.required && typeof values[f.name] !== "string")
      throw usage(`${name}: required option --${f.name} is missing`);
  }
  return values;
}

/** Runs one agent command line (without the program name) and returns the exit code. */
export async function runAgentCli(args: string[], io: AgentCliIo): Promise<number> {
  const [name = "", ...rest] = args;
  if (name === "" || name === "help" || name === "--help" || name === "-h") {
    (name === "" ? io.err : io.out)(programHelp());
    return name === "" ? EXIT.usage : EXIT.ok;
  }
  if (name === "--version" || name === "-V") {
    const { AGENT_VERSION } = await import("../version.ts");
    io.out(`${AGENT_VERSION}\n`);
    return EXIT.ok;
  }
  const command = Object.hasOwn(SUBCOMMANDS, name) ? SUBCOMMANDS[name] : undefined;
  try {
    if (!command) throw usage(`unknown command ${JSON.stringify(name)}; the commands are enroll and serve`);
    const values = parse(name, command, rest);
    if (values === "help") {
      io.out(commandHelp(name, command));
      return EXIT.ok;
    }
    await command.run(values, io);
    return EXIT.ok;
  } catch (reason) {
    const error = NetservaError.from(reason);
    io.err(`error: ${error.message}\n`);
    return exitCodeFor(error.code);
  }
}
