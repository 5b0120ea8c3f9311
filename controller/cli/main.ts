// The `netserva-mail` command line. NetServa's command names (addvmail, shvmail, …) are both
// subcommands and bin aliases: the program name picks the subcommand. This entry stays small: a
// command a running `serve` executes is forwarded over the admin socket without loading the
// command tree, MikroORM or the database; only a command run here loads ./program.ts.
import { basename } from "node:path";
import { createCliContext } from "./cli-context.ts";
import type { CliContext, CliIo } from "./cli-context.ts";
import { forwardToDaemon } from "./admin-socket.ts";
import { mailCommandNames } from "./commands/mail-registry.ts";

/** Commands that never go through a running daemon. */
const LOCAL_ONLY = new Set(["serve", "help", "--help", "-h", "--version"]);

/** Runs one command line (without the program name) in this process and returns the exit code. */
export async function runCommand(argv: string[], ctx: CliContext): Promise<number> {
  const program = await import("./program.ts");
  return program.runCommand(argv, ctx);
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
  // The daemon's metrics live in the daemon, whichever database it uses, and a renewed controller
  // certificate must reach the daemon's servers.
  const daemonOnly = first === "metrics" || (first === "cert" && argv[1] === "renew-controller");
  if ((!io.env["DATABASE_URL"] || daemonOnly) && !LOCAL_ONLY.has(first)) {
    const homeIndex = argv.indexOf("--home");
    const paths = ctx.paths(homeIndex >= 0 ? argv[homeIndex + 1] : undefined);
    const forwarded = await forwardToDaemon(paths.socket, argv, io, io.readStdin, ctx.actor);
    if (forwarded !== undefined) return forwarded;
  }
  return runCommand(argv, ctx);
}
