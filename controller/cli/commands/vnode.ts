import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { audited } from "../../audit/audit.ts";
import { addVnode, findVnode, issueJoinToken, revokeVnode } from "../../fleet/vnode-service.ts";
import { readControllerConfig } from "../../home/controller-config.ts";
import type { CliContext } from "../cli-context.ts";
import { invalid } from "../../../common/errors.ts";

function parseTtl(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const match = /^(\d{1,6})(s|m|h)?$/.exec(value);
  if (!match) throw invalid("ttl", `'${value}' must be a number with s, m or h (e.g. 15m)`);
  const seconds = Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[match[2] as "s" | "m" | "h"] ?? 1);
  if (seconds < 10 || seconds > 7 * 24 * 3600) throw invalid("ttl", "must be between 10s and 168h");
  return seconds;
}

export function registerVnode(program: Command, ctx: CliContext): void {
  const vnode = program.command("vnode").description("the fleet: add, join tokens, revoke");

  vnode
    .command("add <name>")
    .description("record a vnode and print its one-time join token")
    .requiredOption("--address <host:port>", "where the vnode's agent listens")
    .option("--ttl <duration>", "join token lifetime (default from controller.json, 1h)")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: { address: string; ttl?: string; home?: string }) => {
      const paths = ctx.paths(options.home);
      const config = readControllerConfig(paths.config);
      const ttlSeconds = parseTtl(options.ttl, config.joinTokenSeconds);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const issued = await audited(
          em,
          { actor: ctx.actor, command: "vnode add", vnodeName: name.slice(0, 63), args: { address: options.address } },
          () =>
            addVnode(em, { name, address: options.address, caCertPem: readFileSync(paths.caCert, "utf8"), ttlSeconds }),
        );
        ctx.io.out(
          `vnode ${name} added (${options.address}). Join token, valid until ${issued.expiresAt.toISOString()}:\n${issued.token}\n`,
        );
        ctx.io.err(
          `on the vnode: netserva-mail-agent enroll --controller ${config.listen} --token ${issued.token} --home DIR\n`,
        );
      } finally {
        await db.close();
      }
    });

  vnode
    .command("token <name>")
    .description("print a new one-time join token for a vnode that is not enrolled yet")
    .option("--ttl <duration>", "join token lifetime")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: { ttl?: string; home?: string }) => {
      const paths = ctx.paths(options.home);
      const config = readControllerConfig(paths.config);
      const ttlSeconds = parseTtl(options.ttl, config.joinTokenSeconds);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const issued = await audited(
          em,
          { actor: ctx.actor, command: "vnode token", vnodeName: name.slice(0, 63) },
          async () => {
            const row = await findVnode(em, name);
            return issueJoinToken(em, row, readFileSync(paths.caCert, "utf8"), ttlSeconds);
          },
        );
        ctx.io.out(`${issued.token}\n`);
      } finally {
        await db.close();
      }
    });

  vnode
    .command("revoke <name>")
    .description("revoke the vnode's certificates: the controller drops and refuses its agent at once")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: { home?: string }) => {
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const result = await audited(
          em,
          { actor: ctx.actor, command: "vnode revoke", vnodeName: name.slice(0, 63) },
          () => revokeVnode(em, name),
        );
        ctx.io.out(
          `vnode ${name} revoked (${result.serials.length} certificate${result.serials.length === 1 ? "" : "s"}: ${result.serials.join(", ") || "none"})\n`,
        );
      } finally {
        await db.close();
      }
    });
}
