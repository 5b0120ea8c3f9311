// chvmaildomain <vnode> <domain>: change a domain's state, default quota and limits.
import type { Command } from "commander";
import { parseActiveFlag } from "../../../../common/validation/names.ts";
import type { CliContext } from "../../cli-context.ts";
import { withMail } from "../../mail-context.ts";
import { parseCount, usage, withHome } from "./flags.ts";
import type { HomeFlag } from "./flags.ts";
import { reportMutation } from "./report.ts";

interface Flags extends HomeFlag {
  active?: string;
  quota?: string;
  maxMailboxes?: string;
  maxAliases?: string;
  maxQuota?: string;
  overcommit?: boolean;
  dryRun?: boolean;
}

export function registerChvmaildomain(program: Command, ctx: CliContext): void {
  withHome(
    program
      .command("chvmaildomain <vnode> <domain>")
      .description("change a mail domain: active, default quota, limits, overcommit")
      .option("--active <0|1>", "1 to enable, 0 to disable the domain")
      .option("--quota <size>", "new default mailbox quota")
      .option("--max-mailboxes <n>", "most mailboxes (0 = unlimited)")
      .option("--max-aliases <n>", "most aliases (0 = unlimited)")
      .option("--max-quota <size>", "largest quota of one mailbox (0 = unlimited)")
      .option("--overcommit", "allow quotas beyond the vnode's mail filesystem")
      .option("--no-overcommit", "keep the sum of quotas within the vnode's mail filesystem")
      .option("--dry-run", "check and show what would change; change nothing"),
  ).action(async (vnode: string, domain: string, flags: Flags) => {
    const active = flags.active === undefined ? undefined : parseActiveFlag(flags.active, "active");
    const maxMailboxes = parseCount(flags.maxMailboxes, "maxMailboxes");
    const maxAliases = parseCount(flags.maxAliases, "maxAliases");
    const given = [active, flags.quota, maxMailboxes, maxAliases, flags.maxQuota, flags.overcommit].some(
      (v) => v !== undefined,
    );
    if (!given)
      throw usage(
        "nothing to change: give --active, --quota, --max-mailboxes, --max-aliases, --max-quota or --[no-]overcommit",
      );
    await withMail(ctx, flags, async (session) => {
      const result = await session.services.domains.change({
        vnode,
        domain,
        active,
        defaultQuota: flags.quota,
        maxMailboxes,
        maxAliases,
        maxQuota: flags.maxQuota,
        overcommit: flags.overcommit,
        dryRun: flags.dryRun,
      });
      await reportMutation(ctx, session, result, `changed mail domain ${result.value.domain}`);
    });
  });
}
