import type { Command } from "commander";
import { createLogger } from "../../../common/log.ts";
import { installLastResort } from "../../../common/process/last-resort.ts";
import { createControllerMetrics } from "../../daemon/controller-metrics.ts";
import { startControllerDaemon } from "../../daemon/controller-daemon.ts";
import { readControllerConfig } from "../../home/controller-config.ts";
import { dnsSetupFor } from "../dns-context.ts";
import { startAdminSocket } from "../admin-socket.ts";
import type { CliContext } from "../cli-context.ts";
import { waitForSignal } from "../../../common/signals.ts";
import { invalid } from "../../../common/errors.ts";
import { armKillPoint } from "../../faults/kill-points.ts";
import { onPhases } from "../../../common/phase-timing.ts";
import { readKek } from "../../pki/ca-seal.ts";

/** How long serve may take to close its listeners, links and database after SIGTERM/SIGINT. */
const SHUTDOWN_DEADLINE_MS = 10_000;

export function registerServe(
  program: Command,
  ctx: CliContext,
  run: (argv: string[], inner: CliContext) => Promise<number>,
): void {
  program
    .command("serve")
    .description("run the controller daemon: enrollment endpoint, agent links, health watch")
    .option("--home <dir>", "controller home")
    .option("--listen <host:port>", "enrollment listen address (default from controller.json)")
    .option("--health-interval <ms>", "health report interval asked of agents", "5000")
    .option(
      "--certificate-check-interval <ms>",
      "how often certificates are checked for renewal (the controller's own, vnodes' mail TLS)",
      "3600000",
    )
    .action(
      async (options: { home?: string; listen?: string; healthInterval: string; certificateCheckInterval: string }) => {
        const certificateCheckMs = Number(options.certificateCheckInterval);
        if (!Number.isInteger(certificateCheckMs) || certificateCheckMs < 100)
          throw invalid("certificate-check-interval", "must be a whole number of milliseconds, at least 100");
        // The fault tests' crash points (issue 13); unset in production, where every point is a no-op.
        armKillPoint(ctx.io.env["NETSERVA_CONTROLLER_KILL_AT"]);
        const paths = ctx.paths(options.home);
        const config = readControllerConfig(paths.config);
        // Read before anything starts: a malformed KEK stops serve with the variable's name.
        const kek = readKek(ctx.io.env);
        const kekOption = kek ? { kek } : {};
        const db = await ctx.openDb(paths);
        const log = createLogger({ fields: { component: "controller" } });
        const metrics = createControllerMetrics();
        const uninstall = installLastResort({ log, onCatch: (kind) => metrics.lastResort(kind) });
        // The phases of commands run here (the admin socket's, the pushes): one process, one daemon.
        const stopPhases = onPhases((timing) => metrics.phase(timing));
        const daemon = await startControllerDaemon({
          paths,
          config,
          db,
          log,
          ...(options.listen ? { listen: options.listen } : {}),
          healthIntervalMs: Number(options.healthInterval) || 5000,
          onEnrollmentRefused: (method, reason) => metrics.enrollmentRefused(method, reason),
          metrics,
          certificateCheckMs,
          // The fencing test's paused holder (lease-keeper.ts); never set in production.
          ...(ctx.io.env["NETSERVA_FAULT_IGNORE_LEASE_LAPSE"] === "1" ? { ignoreLeaseLapse: true } : {}),
          // ACME's DNS-01 goes through the provider controller.json and the environment name.
          dns: () => dnsSetupFor(paths, ctx.io.env).provider,
          ...kekOption,
        });
        // Other CLI invocations reach the embedded database through this process.
        const admin = await startAdminSocket({
          path: paths.socket,
          db,
          ctx,
          run,
          log: log.child({ component: "admin-socket" }),
          daemon: {
            metricsText: () => metrics.text(),
            presentedCertificates: () => daemon.presented(),
            renewControllerCertificate: () => daemon.renewControllerCertificate(),
            deliver: () => daemon.deliver,
          },
          onClientError: () => metrics.adminClientError(),
        });
        ctx.io.err(`controller listening on port ${daemon.port}\n`);
        const signal = await waitForSignal();
        log.info("shutting down", { signal });
        // A close that waits on a peer (a stream still open, a pool connection to a database
        // that stopped answering, a command still inside a transaction) must not hold the
        // process until the service manager kills it: bounded, and a second signal ends it at
        // once. The line names the step that was still running and what kept the process alive.
        let step = "admin socket";
        const force = (why: string): never => {
          log.error("shutdown cut short", { why, step, resources: process.getActiveResourcesInfo() });
          process.exit(1);
        };
        setTimeout(() => force(`not finished within ${SHUTDOWN_DEADLINE_MS / 1000} s`), SHUTDOWN_DEADLINE_MS).unref();
        void waitForSignal().then(() => force("second signal"));
        await admin.close();
        step = "agent links and enrollment endpoint";
        await daemon.close();
        step = "database";
        await db.close();
        // Past here nothing should hold the event loop; if something still does, the deadline
        // above says so instead of the process lingering.
        step = "exit";
        log.info("controller stopped");
        stopPhases();
        uninstall();
      },
    );
}
