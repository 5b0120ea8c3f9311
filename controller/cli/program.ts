// The command tree (commander). Commands are registered by name and a command's module is
// imported only when that command runs: `shvmail` loads shvmail's module, not `serve`'s daemon
// or the DNS commands. Help and unknown names load them all.
import { Command, CommanderError } from "commander";
import { EXIT, exitCodeFor } from "../../common/exit-codes.ts";
import type { CliContext } from "./cli-context.ts";
import { asDatabaseError } from "../db/database-errors.ts";
import { mailCommandLoaders } from "./commands/mail-registry.ts";
import { timed } from "../../common/phase-timing.ts";

type Register = (program: Command, ctx: CliContext) => void;
type Loader = () => Promise<Register>;

/** Top-level command names → the register function that defines them, in help order. */
export const COMMANDS: ReadonlyArray<readonly [readonly string[], Loader]> = [
  [["init"], async () => (await import("./commands/init.ts")).registerInit],
  [
    ["vnode", "mail:tls"],
    async () => {
      // `vnode set` and `mail:tls` extend the vnode command: one loader for both modules.
      const [vnode, vnodeMail, vnodeManage, vnodeAdopt] = await Promise.all([
        import("./commands/vnode.ts"),
        import("./commands/vnode-mail.ts"),
        import("./commands/vnode-manage.ts"),
        import("./commands/vnode-adopt.ts"),
      ]);
      return (program, ctx) => {
        vnode.registerVnode(program, ctx);
        vnodeMail.registerVnodeMail(program, ctx);
        vnodeManage.registerVnodeManage(program, ctx);
        vnodeAdopt.registerVnodeAdopt(program, ctx);
      };
    },
  ],
  [["status"], async () => (await import("./commands/status.ts")).registerStatus],
  [["leases"], async () => (await import("./commands/leases.ts")).registerLeases],
  [
    ["serve"],
    async () => {
      const { registerServe } = await import("./commands/serve.ts");
      return (program, ctx) => registerServe(program, ctx, runCommand);
    },
  ],
  ...mailCommandLoaders.map(([name, load]) => [[name], load] as const),
  [["mail:status"], async () => (await import("./commands/mail-status.ts")).registerMailStatus],
  [["mail:test-smtp"], async () => (await import("./commands/mail-test-smtp.ts")).registerMailTestSmtp],
  [["cert"], async () => (await import("./commands/cert.ts")).registerCert],
  [["ca"], async () => (await import("./commands/ca.ts")).registerCa],
  [["metrics"], async () => (await import("./commands/metrics.ts")).registerMetrics],
  [["mail:configure-dkim"], async () => (await import("./commands/dns/configure-dkim.ts")).registerConfigureDkim],
  [["mail:dns"], async () => (await import("./commands/dns/mail-dns.ts")).registerMailDns],
  [["mail:dns-check"], async () => (await import("./commands/dns/mail-dns-check.ts")).registerMailDnsCheck],
];

/** The program with the named command only, or with every command when the name is not one. */
export async function buildProgram(ctx: CliContext, commandName?: string): Promise<Command> {
  const program = new Command("netserva-mail");
  program
    .description("netserva-mail: mail hosting control plane (the agent on a vnode is netserva-mail-agent)")
    .version("0.1.0")
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ writeOut: (s) => ctx.io.out(s), writeErr: (s) => ctx.io.err(s) });
  const named = COMMANDS.filter(([names]) => commandName !== undefined && names.includes(commandName));
  const loaders = (named.length > 0 ? named : COMMANDS).map(([, load]) => load);
  for (const register of await Promise.all(loaders.map((load) => load()))) register(program, ctx);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs one command line (without the program name) in this process and returns the exit code. */
export async function runCommand(argv: string[], ctx: CliContext): Promise<number> {
  try {
    const program = await timed("cli.program", () => buildProgram(ctx, argv[0]));
    await timed("cli.parse", () => program.parseAsync(argv, { from: "user" }));
    return EXIT.ok;
  } catch (reason) {
    if (reason instanceof CommanderError) {
      if (
        reason.code === "commander.helpDisplayed" ||
        reason.code === "commander.version" ||
        reason.code === "commander.help"
      )
        return EXIT.ok;
      return EXIT.usage;
    }
    const error = asDatabaseError(reason);
    ctx.io.err(`error: ${error.message}\n`);
    return exitCodeFor(error.code);
  }
}
