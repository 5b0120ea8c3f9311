import type { Command } from "commander";
import { createLogger } from "../../../common/log.ts";
import { invalid } from "../../../common/errors.ts";
import type { CliContext } from "../cli-context.ts";
import { waitForSignal } from "../signals.ts";

export function registerAgent(program: Command, ctx: CliContext): void {
  const agent = program.command("agent").description("the agent on a vnode: enroll, serve");

  agent
    .command("enroll")
    .description("create this vnode's key, have the controller sign it, store the certificate")
    .requiredOption("--controller <host:port>", "the controller's enrollment address")
    .requiredOption("--token <token>", "the join token from `netserva-mail vnode add`")
    .requiredOption("--home <dir>", "the agent's home directory")
    .action(async (options: { controller: string; token: string; home: string }) => {
      const { enrollThisAgent } = await import("../../../agent/enroll/enroll.ts");
      const { agentHomePaths } = await import("../../../agent/home/agent-home.ts");
      const { AGENT_VERSION } = await import("../../../agent/agent-daemon.ts");
      const result = await enrollThisAgent({
        controller: options.controller,
        token: options.token,
        paths: agentHomePaths(options.home),
        version: AGENT_VERSION,
      });
      ctx.io.out(`enrolled as vnode ${result.vnode}; certificate valid until ${result.notAfter.toISOString()}\n`);
    });

  agent
    .command("serve")
    .description("serve the agent over mutual-TLS gRPC (and metrics over HTTPS)")
    .requiredOption("--home <dir>", "the agent's home directory")
    .option("--listen <host:port>", "gRPC listen address", "0.0.0.0:7444")
    .option("--metrics-listen <host:port>", "HTTPS /metrics listen address (off when absent)")
    .option("--mail", "manage the vnode's mail daemons (files under / unless --root)")
    .option("--root <dir>", "manage mail under this root instead of / (implies --mail)")
    .option("--mail-listen <addresses>", "comma-separated addresses the mail daemons listen on")
    .option("--init <kind>", "sc() backend: systemd | openrc | direct (detected by default)")
    .option("--no-auth-penalty", "test instances: no Dovecot delay after a failed login")
    .option("--filter-offline", "no resolver on this vnode: turn off Rspamd's DNS-bound modules and greylisting")
    .option("--filter-cache <dir>", "shared Rspamd hyperscan cache (saves ~10 s per cold start)")
    .option("--clamav-test-signatures", "tests and demos only: an EICAR-only ClamAV database (no signature download)")
    .option("--usage-interval <ms>", "how often mailbox usage is rescanned on disk (default 30000)")
    .action(
      async (options: {
        home: string;
        listen: string;
        metricsListen?: string;
        mail?: boolean;
        root?: string;
        mailListen?: string;
        init?: string;
        authPenalty: boolean;
        filterOffline?: boolean;
        filterCache?: string;
        clamavTestSignatures?: boolean;
        usageInterval?: string;
      }) => {
        const { startAgentDaemon } = await import("../../../agent/agent-daemon.ts");
        const log = createLogger({ fields: { component: "agent" } });
        if (options.init !== undefined && !["systemd", "openrc", "direct"].includes(options.init))
          throw invalid("init", "must be systemd, openrc or direct");
        const mail =
          options.mail || options.root
            ? {
                root: options.root ?? "/",
                ...(options.mailListen ? { listen: options.mailListen.split(",").map((a) => a.trim()) } : {}),
                ...(options.init ? { initKind: options.init as "systemd" | "openrc" | "direct" } : {}),
                ...(options.authPenalty === false ? { authPenalty: false } : {}),
                ...(options.usageInterval
                  ? { usageIntervalMs: Math.max(1000, Number(options.usageInterval) || 30_000) }
                  : {}),
                filter: {
                  ...(options.filterOffline ? { disableNetworkModules: true, greylist: false as const } : {}),
                  ...(options.filterCache ? { hsCacheDir: options.filterCache } : {}),
                  ...(options.clamavTestSignatures ? { clamavTestSignatures: true } : {}),
                },
              }
            : undefined;
        const daemon = await startAgentDaemon({
          home: options.home,
          listen: options.listen,
          ...(options.metricsListen ? { metricsListen: options.metricsListen } : {}),
          log,
          ...(mail ? { mail } : {}),
        });
        ctx.io.err(
          `agent ${daemon.vnode} listening on port ${daemon.port}${daemon.metricsPort ? `, metrics on ${daemon.metricsPort}` : ""}\n`,
        );
        await waitForSignal();
        await daemon.close();
      },
    );
}
