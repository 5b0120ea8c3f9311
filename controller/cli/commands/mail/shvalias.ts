// shvalias <vnode> [source] [--domain D]: aliases of the vnode, of one domain, or one alias.
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { parseFormat } from "../../format.ts";
import { withMail } from "../../mail-context.ts";
import { withListFormat } from "./flags.ts";
import type { ListFlags } from "./flags.ts";
import { aliasTable } from "./views.ts";

interface Flags extends ListFlags {
  domain?: string;
}

export function registerShvalias(program: Command, ctx: CliContext): void {
  withListFormat(
    program
      .command("shvalias <vnode> [source]")
      .description("show aliases: all of the vnode, of one domain, or one source")
      .option("--domain <domain>", "only this domain's aliases"),
  ).action(async (vnode: string, source: string | undefined, flags: Flags) => {
    const format = parseFormat(flags.format, flags.json);
    await withMail(ctx, flags, async ({ services }) => {
      if (source !== undefined) {
        const alias = await services.aliases.get(vnode, source);
        ctx.io.out(format === "json" ? JSON.stringify(alias, null, 2) + "\n" : aliasTable([alias], format));
        return;
      }
      ctx.io.out(
        aliasTable(
          await services.aliases.list(vnode, flags.domain === undefined ? {} : { domain: flags.domain }),
          format,
        ),
      );
    });
  });
}
