// `netserva-mail metrics`: the running controller daemon's own counters (Prometheus text format),
// e.g. how often the last-resort error handler fired. They live in the `serve` process, so the
// command always goes through its admin socket.
import type { Command } from "commander";
import { NetservaError } from "../../../common/errors.ts";
import type { CliContext } from "../cli-context.ts";

export function registerMetrics(program: Command, ctx: CliContext): void {
  program
    .command("metrics")
    .description("the running controller daemon's own metrics (Prometheus text format)")
    .option("--home <dir>", "controller home")
    .action(async (options: { home?: string }) => {
      if (!ctx.daemon)
        throw new NetservaError(
          "unavailable",
          `no running \`netserva-mail serve\` answered on ${ctx.paths(options.home).socket}: the metrics live in the daemon`,
        );
      ctx.io.out(await ctx.daemon.metricsText());
    });
}
