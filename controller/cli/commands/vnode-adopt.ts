// `vnode adopt <vnode>`: adopt an existing NetServa vnode in place. --dry-run: what would be
// imported and refused, from the agent's read-only inventory. Without it: the same plan, refused
// rows block unless skipped; then the rows are imported (hashes as stored, never re-hashed; homes,
// uids and gids kept), the agent keeps NetServa's files aside and switches to managed, and the
// whole state goes to the vnode in ONE apply; the diff of main.cf/master.cf/dovecot.conf and of
// the lookup rows is printed. --rollback puts NetServa's files back exactly and restarts the
// daemons onto them; the vnode is unmanaged again. No password or hash is ever printed.
import type { Command } from "commander";
import { NetservaError } from "../../../common/errors.ts";
import { audited } from "../../audit/audit.ts";
import { importAdoption, type AdoptionImport } from "../../adopt/adoption-import.ts";
import { planAdoption, type AdoptionPlan } from "../../adopt/adoption-plan.ts";
import { lineDiff } from "../../adopt/text-diff.ts";
import { commandDeliver } from "../command-deliver.ts";
import { readVnodeInventory } from "../../fleet/vnode-inventory.ts";
import { setVnodeManagement } from "../../fleet/vnode-management.ts";
import { previewAdoptedFiles } from "../../fleet/vnode-preview.ts";
import type { Database } from "../../db/open-database.ts";
import type { HomePaths } from "../../home/home-paths.ts";
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
  yes?: boolean;
  rollback?: boolean;
}

/** Rows shown one per line in the table; the rest are counted (JSON has them all). */
const ROW_LINES = 40;

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
    .option("--rollback", "put NetServa's files back (kept aside at adoption) and make the vnode unmanaged again")
    .option("--yes", "do not ask")
    .option("--format <format>", "table | json")
    .option("--json", "JSON output")
    .option("--home <dir>", "controller home")
    .action(async (name: string, options: AdoptOptions) => {
      const format = parseFormat(options.format, options.json);
      if (format === "csv") throw new NetservaError("usage", "vnode adopt: --format is table or json");
      if (options.rollback && (options.dryRun || options.skip))
        throw new NetservaError("usage", "vnode adopt: --rollback takes neither --dry-run nor --skip");
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        if (options.rollback) {
          await confirm(ctx, `put NetServa's configuration back on ${name}?`, options.yes);
          const r = await audited(
            db.em(),
            { actor: ctx.actor, command: "vnode adopt --rollback", vnodeName: name.slice(0, 63) },
            () =>
              setVnodeManagement(db, paths, {
                vnode: name,
                managed: false,
                dryRun: false,
                reason: "rolled back to NetServa's configuration (vnode adopt --rollback)",
                restoreKeptAside: true,
                actor: ctx.actor,
              }),
          );
          const restored = r.restored.map((f) => ({ path: f.path, sha256: f.sha256, removed: f.removed }));
          if (format === "json")
            ctx.io.out(`${JSON.stringify({ vnode: name, managed: r.managed, reason: r.reason, restored }, null, 2)}\n`);
          else
            ctx.io.out(
              `vnode ${name} is unmanaged again: NetServa's configuration serves it\n` +
                restored
                  .map((f) => (f.removed ? `  removed ${f.path}\n` : `  restored ${f.path} (sha256 ${f.sha256})\n`))
                  .join("") +
                "  the imported rows stay in the controller; `vnode adopt` again refreshes them from the sysadm DB\n",
            );
          return;
        }
        const inventory = await readVnodeInventory(db, paths, {
          vnode: name,
          ...(options.sysadmDb ? { sysadmDb: options.sysadmDb } : {}),
          actor: ctx.actor,
        });
        const plan = planAdoption(inventory, new Set(options.skip ?? []));
        const preview = await adoptionPreview(db, paths, name, ctx.actor, inventory, plan);
        const s = { ...summary(name, inventory, plan), preview };
        if (options.dryRun) {
          ctx.io.out(format === "json" ? `${JSON.stringify(s, null, 2)}\n` : table(s) + previewText(preview));
          return;
        }
        if (plan.refusals.length > 0) {
          ctx.io.out(format === "json" ? `${JSON.stringify(s, null, 2)}\n` : table(s));
          throw new NetservaError(
            "failed_precondition",
            `vnode adopt: ${plan.refusals.length} rows refused; fix them in the sysadm DB or leave them out with --skip <subject>; nothing was changed`,
          );
        }
        const before = await setVnodeManagement(db, paths, {
          vnode: name,
          managed: true,
          dryRun: true,
          actor: ctx.actor,
        });
        // What the switch will change, shown before it is made (and before the question).
        if (format !== "json") ctx.io.out(table(s) + previewText(preview));
        await confirm(
          ctx,
          `import ${plan.mailboxes.length} mailboxes and switch ${name} to netserva-mail's configuration?`,
          options.yes,
        );
        // While the vnode is unmanaged NetServa's DB is the truth (rows imported before are
        // refreshed); once managed, ours is (a second run only adds what is missing).
        const imported = await importAdoption(db.em(), {
          vnode: name,
          actor: ctx.actor,
          plan,
          authoritative: !before.managed,
        });
        const switched = before.managed
          ? before
          : await audited(db.em(), { actor: ctx.actor, command: "vnode adopt", vnodeName: name.slice(0, 63) }, () =>
              setVnodeManagement(db, paths, { vnode: name, managed: true, dryRun: false, actor: ctx.actor }),
            );
        const outcome = await commandDeliver(ctx, db, paths).deliver({ vnode: name, actor: ctx.actor });
        const after = await readVnodeInventory(db, paths, {
          vnode: name,
          ...(options.sysadmDb ? { sysadmDb: options.sysadmDb } : {}),
          actor: ctx.actor,
        });
        const files = inventory.files.map((f) => {
          const now = after.files.find((x) => x.path === f.path);
          return {
            path: f.path,
            before: f.exists ? f.sha256 : "",
            after: now?.exists ? now.sha256 : "",
            diff: lineDiff(f.content, now?.content ?? ""),
          };
        });
        const rows = outcome.diff.filter((l) => / (domain|mailbox|alias) /.test(l));
        const report = {
          vnode: name,
          imported: imported.value,
          generation: imported.generation,
          weakHashes: plan.weak,
          warnings: plan.warnings,
          preview,
          switched: !before.managed,
          keptAsideDir: switched.keptAsideDir,
          keptAside: before.managed ? [] : switched.overwrites,
          pushed: outcome.pushed,
          ...(outcome.pushed ? {} : { reason: outcome.refused ?? outcome.reason ?? "unknown" }),
          appliedGeneration: outcome.appliedGeneration ?? null,
          files,
          rows,
        };
        if (format === "json") ctx.io.out(`${JSON.stringify(report, null, 2)}\n`);
        else ctx.io.out(adoptedText(report.vnode, imported.value, report, rows));
        if (!outcome.pushed)
          throw new NetservaError(
            "unavailable",
            `vnode adopt: the rows are imported and the vnode is managed, but the state was not applied (${report.reason ?? "unknown"}); it is retried by the reconciler, or run \`vnode adopt ${name} --rollback\` to go back`,
          );
      } finally {
        await db.close();
      }
    });
}

async function confirm(ctx: CliContext, question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!ctx.io.confirm)
    throw new NetservaError(
      "usage",
      "vnode adopt changes the vnode's mail configuration and there is no terminal to ask on: pass --yes to confirm (or --dry-run to see the plan)",
    );
  if (!(await ctx.io.confirm(`${question} [y/N] `)))
    throw new NetservaError("invalid_argument", "confirmation: not confirmed; nothing was changed", {
      field: "confirmation",
    });
}

function adoptedText(
  vnode: string,
  imported: AdoptionImport,
  r: {
    switched: boolean;
    keptAsideDir: string;
    keptAside: string[];
    pushed: boolean;
    appliedGeneration: number | null;
    files: Array<{ path: string; diff: string[] }>;
  },
  rows: string[],
): string {
  const c = (k: keyof AdoptionImport): string =>
    `${imported[k].added} added, ${imported[k].updated} updated, ${imported[k].unchanged} unchanged`;
  const lines = [
    `imported: domains ${c("domains")}; mailboxes ${c("mailboxes")}; aliases ${c("aliases")}`,
    r.switched
      ? `switched ${vnode} to managed; NetServa's files kept aside in ${r.keptAsideDir}: ${r.keptAside.join(", ") || "none"}`
      : `${vnode} was managed already`,
  ];
  const differ = r.files.filter((f) => f.diff.length > 0).map((f) => f.path);
  if (differ.length > 0) lines.push(`now ours (diff shown above; --json has it as applied): ${differ.join(", ")}`);
  if (rows.length > 0) {
    lines.push(`lookup rows (${rows.length}):`);
    lines.push(...rows.slice(0, ROW_LINES).map((l) => `  ${l}`));
    if (rows.length > ROW_LINES) lines.push(`  … and ${rows.length - ROW_LINES} more (--json lists them all)`);
  }
  lines.push(
    r.pushed
      ? `live on ${vnode} at generation ${r.appliedGeneration ?? "?"}; \`vnode adopt ${vnode} --rollback\` goes back`
      : `not applied`,
  );
  return `${lines.join("\n")}\n`;
}

interface Preview {
  /** NetServa's main.cf/master.cf/dovecot.conf → ours, line by line. */
  files: Array<{ path: string; before: string; after: string; diff: string[] }>;
  /** Files the switch writes that are not NetServa's (maps, the sql connection file, …). */
  writes: string[];
  /** The lookup rows (all new: NetServa's sysadm DB stays as it is, ours is separate). */
  rows: { domains: number; mailboxes: number; aliases: number };
  /** Why there is no file preview (an agent without PreviewState). */
  unavailable?: string;
}

/** The daemon files the switch would write, rendered by the agent (nothing written), diffed. */
async function adoptionPreview(
  db: Database,
  paths: HomePaths,
  vnode: string,
  actor: string,
  inventory: ReadInventoryResponse,
  plan: AdoptionPlan,
): Promise<Preview> {
  const rows = { domains: plan.domains.length, mailboxes: plan.mailboxes.length, aliases: plan.aliases.length };
  let rendered: Array<{ path: string; sha256: string; content: string }>;
  try {
    rendered = (await previewAdoptedFiles(db, paths, { vnode, actor, plan })).files;
  } catch (error) {
    return { files: [], writes: [], rows, unavailable: NetservaError.from(error).message };
  }
  const files = inventory.files.map((f) => {
    const next = rendered.find((r) => r.path === f.path);
    return {
      path: f.path,
      before: f.exists ? f.sha256 : "",
      after: next?.sha256 ?? "",
      diff: lineDiff(f.content, next?.content ?? ""),
    };
  });
  const known = new Set(inventory.files.map((f) => f.path));
  return { files, writes: rendered.map((r) => r.path).filter((p) => !known.has(p)), rows };
}

function previewText(p: Preview): string {
  const lines = ["the switch would change:"];
  if (p.unavailable) lines.push(`  (no file preview: ${p.unavailable})`);
  for (const f of p.files) {
    if (f.diff.length === 0) continue;
    lines.push(`--- ${f.path} (NetServa's)`, `+++ ${f.path} (netserva-mail's)`, ...f.diff.map((l) => `  ${l}`));
  }
  if (p.writes.length > 0) lines.push(`  and writes ${p.writes.length} files of its own: ${p.writes.join(", ")}`);
  lines.push(
    `  lookup rows: + ${p.rows.domains} domains, + ${p.rows.mailboxes} mailboxes, + ${p.rows.aliases} aliases (in netserva-mail's lookup DB; NetServa's sysadm DB is not written)`,
  );
  return `${lines.join("\n")}\n`;
}
