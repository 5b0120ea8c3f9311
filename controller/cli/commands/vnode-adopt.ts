// `vnode adopt <vnode> --dry-run`: what adopting an existing NetServa vnode would import and
// what it refuses, from the agent's read-only inventory. No password or hash is printed: weak
// ones are named by address and scheme only. The switch itself (import, one apply, rollback)
// is not available yet: without --dry-run the command refuses and changes nothing.
import type { Command } from "commander";
import { NetservaError } from "../../../common/errors.ts";
import { planAdoption, type AdoptionPlan } from "../../adopt/adoption-plan.ts";
import { readVnodeInventory } from "../../fleet/vnode-inventory.ts";
import type { ReadInventoryResponse } from "../../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { CliContext } from "../cli-context.ts";
import { parseFormat } from "../format.ts";

interface AdoptOptions {
  sysadmDb?: string;
  dryRun?: boolean;
  skip?: string[];
  format?: string;
  json?: boolean;
  home?: string;
}

/** The plan for people and for JSON: counts, flags, refusals; never a hash. */
function summary(name: string, inv: ReadInventoryResponse, plan: AdoptionPlan) {
  const inactive = <T extends { active: boolean }>(rows: readonly T[]): number => rows.filter((r) => !r.active).length;
  return {
    vnode: name,
    sysadmDb: inv.sysadmDb,
    layout: inv.layout,
    columns: inv.columns,
    found: { domains: inv.domains.length, mailboxes: inv.mailboxes.length, aliases: inv.aliases.length },
    import: {
      domains: plan.domains.length,
      inactiveDomains: inactive(plan.domains),
      mailboxes: plan.mailboxes.length,
      inactiveMailboxes: inactive(plan.mailboxes),
      aliases: plan.aliases.length,
      catchAlls: plan.aliases.filter((a) => a.source.startsWith("@")).length,
      inactiveAliases: inactive(plan.aliases),
    },
    weakHashes: plan.weak,
    refusals: plan.refusals,
    warnings: plan.warnings,
    files: inv.files.map((f) => ({ path: f.path, exists: f.exists, sha256: f.sha256 })),
  };
}

function table(s: ReturnType<typeof summary>): string {
  const i = s.import;
  const lines = [
    `vnode ${s.vnode}: NetServa sysadm DB ${s.sysadmDb} (${s.layout} layout), read only`,
    `  would import ${i.domains} domains (${i.inactiveDomains} inactive), ${i.mailboxes} mailboxes (${i.inactiveMailboxes} inactive), ${i.aliases} aliases (${i.catchAlls} catch-alls, ${i.inactiveAliases} inactive)`,
    `  hashes pass through as stored (nothing re-hashed); homes, uids and gids are kept per mailbox`,
  ];
  if (s.weakHashes.length > 0) {
    lines.push(`  weak password hashes (imported so nobody is locked out; force a change after adopting):`);
    for (const w of s.weakHashes) lines.push(`    ${w.address}  ${w.scheme}`);
  }
  for (const w of s.warnings) lines.push(`  warning: ${w}`);
  if (s.refusals.length > 0) {
    lines.push(
      `  refused (nothing is switched until each is fixed in the sysadm DB or skipped with --skip <subject>):`,
    );
    for (const r of s.refusals) lines.push(`    ${r.kind} ${r.subject}: ${r.reason}; fix: ${r.fix}`);
  } else lines.push("  nothing refused");
  lines.push("  the switch overwrites:");
  for (const f of s.files)
    lines.push(`    ${f.path}${f.exists ? ` (sha256 ${f.sha256.slice(0, 16)}…, kept aside)` : " (absent)"}`);
  return `${lines.join("\n")}\n`;
}

export function registerVnodeAdopt(program: Command, ctx: CliContext): void {
  const vnode = program.commands.find((c) => c.name() === "vnode");
  if (!vnode) throw new Error("register vnode commands first");
  vnode
    .command("adopt <name>")
    .description("adopt an existing NetServa vnode in place (--dry-run: what would be imported and refused)")
    .option("--sysadm-db <path>", "the vnode's NetServa sysadm DB (default: the agent's --sysadm-db)")
    .option("--dry-run", "read and report only; change nothing")
    .option("--skip <subject...>", "leave these refused rows out (address, alias source or domain)")
    .option("--format <format>", "table | json")
    .option("--json", "JSON output")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: AdoptOptions) => {
      const format = parseFormat(options.format, options.json);
      if (format === "csv") throw new NetservaError("usage", "vnode adopt: --format is table or json");
      if (!options.dryRun)
        throw new NetservaError(
          "failed_precondition",
          "vnode adopt: only --dry-run is available in this version (the import and switch are not); nothing was changed",
        );
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const inventory = await readVnodeInventory(db, paths, {
          vnode: name,
          ...(options.sysadmDb ? { sysadmDb: options.sysadmDb } : {}),
          actor: ctx.actor,
        });
        const plan = planAdoption(inventory, new Set(options.skip ?? []));
        const s = summary(name, inventory, plan);
        ctx.io.out(format === "json" ? `${JSON.stringify(s, null, 2)}\n` : table(s));
      } finally {
        await db.close();
      }
    });
}
