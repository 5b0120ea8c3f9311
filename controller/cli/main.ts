// The `netserva-mail` command line. NetServa's command names (addvmail, shvmail, …) are both
// subcommands and bin aliases: the program name picks the subcommand.
import { basename } from "node:path";
import { Command, CommanderError } from "commander";
import { NetservaError } from "../../common/errors.ts";
import { createCliContext } from "./cli-context.ts";
import type { CliContext, CliIo } from "./cli-context.ts";
import { EXIT, exitCodeFor } from "../../common/exit-codes.ts";
import { forwardToDaemon } from "./admin-socket.ts";
import { registerInit } from "./commands/init.ts";
import { registerVnode } from "./commands/vnode.ts";
import { registerVnodeMail } from "./commands/vnode-mail.ts";
import { registerStatus } from "./commands/status.ts";
import { registerServe } from "./commands/serve.ts";
import { registerMailCommands, mailCommandNames } from "./commands/mail-registry.ts";
import { registerMailStatus } from "./commands/mail-status.ts";
import { registerMailTestSmtp } from "./commands/mail-test-smtp.ts";
import { registerCert } from "./commands/cert.ts";
import { registerMetrics } from "./commands/metrics.ts";
import { registerDnsCommands } from "./commands/dns/index.ts";

/** Commands that never go through a running daemon. */
const LOCAL_ONLY = new Set(["serve", "help", "--help", "-h", "--version"]);

function buildProgram(ctx: CliContext): Command {
  const program = new Command("netserva-mail");
  program
    .description("netserva-mail: mail hosting control plane (the agent on a vnode is netserva-mail-agent)")
    .version("0.1.0")
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ writeOut: (s) => ctx.io.out(s), writeErr: (s) => ctx.io.err(s) });
  registerInit(program, ctx);
  registerVnode(program, ctx);
  registerVnodeMail(program, ctx);
  registerStatus(program, ctx);
  registerServe(program, ctx, runCommand);
  registerMailCommands(program, ctx);
  registerMailStatus(program, ctx);
  registerMailTestSmtp(program, ctx);
  registerCert(program, ctx);
  registerMetrics(program, ctx);
  registerDnsCommands(program, ctx);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs one command line (without the program name) and returns the exit code. */
export async function runCommand(argv: string[], ctx: CliContext): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: "user" });
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
    const error = NetservaError.from(reason);
    ctx.io.err(`error: ${error.message}\n`);
    return exitCodeFor(error.code);
  }
}

/** Maps a bin alias (addvmail …) to its subcommand. */
export function argvFor(programPath: string, args: string[]): string[] {
  const name = basename(programPath).replace(/\.(js|ts)$/, "");
  return mailCommandNames.has(name) ? [name, ...args] : args;
}

export async function main(programPath: string, args: string[], io: CliIo): Promise<number> {
  const argv = argvFor(programPath, args);
  const ctx = createCliContext(io);
  const first = argv[0] ?? "";
  // The daemon's metrics live in the daemon, whichever database it uses.
  if ((!io.env["DATABASE_URL"] || first === "metrics") && !LOCAL_ONLY.has(first)) {
    const homeIndex = argv.indexOf("--home");
    const paths = ctx.paths(homeIndex >= 0 ? argv[homeIndex + 1] : undefined);
    const forwarded = await forwardToDaemon(paths.socket, argv, io, io.readStdin, ctx.actor);
    if (forwarded !== undefined) return forwarded;
  }
  return runCommand(argv, ctx);
}
