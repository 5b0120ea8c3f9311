import type { Command } from "commander";
import { initHome } from "../../pki/init-home.ts";
import { readKek } from "../../pki/ca-seal.ts";
import type { CliContext } from "../cli-context.ts";

export function registerInit(program: Command, ctx: CliContext): void {
  program
    .command("init")
    .description("create the controller's home: CA, controller certificate, database (safe to repeat)")
    .option("--home <dir>", "controller home (default $NETSERVA_MAIL_HOME or ~/.netserva-mail)")
    .option("--listen <host:port>", "address `serve` listens on for enrollment", "127.0.0.1:7443")
    .action(async (options: { home?: string; listen: string }) => {
      const paths = ctx.paths(options.home);
      const kek = readKek(ctx.io.env);
      const result = await initHome(paths, () => ctx.openDb(paths), { listen: options.listen }, kek);
      if (result.created.length === 0)
        ctx.io.out(`controller home ${paths.root} is already initialised: nothing changed\n`);
      else
        ctx.io.out(
          `controller home ${paths.root}: created ${result.created.join(", ")}${result.kept.length ? `; kept ${result.kept.join(", ")}` : ""}\n`,
        );
    });
}
