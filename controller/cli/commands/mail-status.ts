// `mail:status [vnode] [--json]`: each vnode's mail health as the fleet last stored it, with
// stale health (> 15 s) and a lagging generation flagged. `--sync-usage` first fetches every
// mailbox's usage from the agent (what `shvmail` shows).
import type { Command } from "commander";
import { notFound } from "../../../common/errors.ts";
import { Vnode } from "../../db/entities/index.ts";
import { agentClientFor } from "../../fleet/agent-for-vnode.ts";
import { isFull } from "../../health/filesystem-full.ts";
import { mailStatus, type MailStatusView } from "../../health/mail-status.ts";
import { syncMailboxUsage } from "../../fleet/mailbox-usage-fetch.ts";
import type { CliContext } from "../cli-context.ts";
import { formatRows, parseFormat } from "../format.ts";
import { terminalText } from "../terminal-text.ts";

const pct = (r: number): string => `${(r * 100).toFixed(0)}%`;

function summaryRow(v: MailStatusView): Record<string, string | number> {
  const m = v.mail;
  return {
    vnode: v.vnode,
    health: v.health,
    age: v.healthAgeSeconds === null ? "-" : `${v.healthAgeSeconds}s`,
    generation: `${v.appliedGeneration}/${v.generation}${v.generationLag > 0 ? " LAG" : ""}${v.refused ? " REFUSED" : ""}`,
    services: v.services.map((s) => `${s.name}:${s.state}`).join(" ") || "-",
    queue: m?.queue ? `${m.queue.active}/${m.queue.deferred}/${m.queue.hold}` : "-",
    users: m?.dovecot.users ?? "-",
    disk: m?.filesystem ? `${pct(m.filesystem.usedRatio)}${(m.filesystems ?? []).some(isFull) ? " FULL" : ""}` : "-",
    quota90: m ? m.quota.over90 : "-",
    tls: m?.mailTlsNotAfter?.slice(0, 10) ?? "-",
  };
}

function detail(v: MailStatusView): string {
  const m = v.mail;
  const lines: Array<[string, string]> = [
    ["vnode", `${v.vnode} (${v.status})`],
    [
      "health",
      `${v.health}${v.lastHealthAt ? `, last report ${v.lastHealthAt} (${v.healthAgeSeconds ?? "?"} s ago)` : ""}${v.stale ? " STALE" : ""}`,
    ],
    [
      "generation",
      `applied ${v.appliedGeneration} of ${v.generation}${v.generationLag > 0 ? ` (lags by ${v.generationLag})` : ""}${v.drift ? ", DRIFT" : ""}${v.refused ? `, generation ${v.refused.generation} REFUSED` : ""}`,
    ],
    ...v.services.map((s): [string, string] => [
      s.name,
      `${s.state}${s.version ? ` ${s.version}` : ""}${s.detail ? ` (${s.detail})` : ""}${s.restarts > 0 ? `, restarted ${s.restarts}x (last ${s.lastRestartAt ?? "?"}: ${s.lastRestartReason ?? "?"})` : ""}`,
    ]),
  ];
  if (m) {
    if (m.queue)
      lines.push([
        "queue",
        `active ${m.queue.active}, deferred ${m.queue.deferred}, hold ${m.queue.hold}, incoming ${m.queue.incoming}${m.queue.deferred > 0 ? `, oldest deferred ${m.queue.oldestDeferredSeconds} s` : ""}`,
      ]);
    lines.push(["dovecot", `${m.dovecot.users ?? "?"} users, ${m.dovecot.connections ?? "?"} connections`]);
    if (m.rspamd.available)
      lines.push([
        "rspamd",
        `scanned ${m.rspamd.scanned}, ham ${m.rspamd.ham}, spam ${m.rspamd.spam}, rejected ${m.rspamd.rejected}`,
      ]);
    if (m.clamavSignaturesAt) lines.push(["clamav signatures", m.clamavSignaturesAt]);
    if (m.filesystem)
      lines.push([
        "mail filesystem",
        `${pct(m.filesystem.usedRatio)} used of ${m.filesystem.sizeBytes} bytes (${m.filesystem.path})`,
      ]);
    for (const f of m.filesystems ?? [])
      lines.push([
        "filesystem",
        `${f.roles.join(", ")}: ${pct(f.usedRatio)} used, ${f.availableBytes} bytes free (${f.path})${isFull(f) ? " FULL" : ""}`,
      ]);
    lines.push([
      "quota",
      `${m.quota.mailboxes} mailboxes; over 80%: ${m.quota.over80}, 90%: ${m.quota.over90}, 100%: ${m.quota.over100}`,
    ]);
    for (const t of m.quota.top.filter((x) => x.ratio !== null && x.ratio >= 0.8))
      lines.push(["  fullest", `${t.address} ${pct(t.ratio ?? 0)} (${t.usedBytes} of ${t.limitBytes})`]);
    lines.push(["mail TLS expires", m.mailTlsNotAfter ?? "no certificate"]);
  }
  if (v.acme) {
    lines.push([
      "ACME",
      `${v.acme.state}, next order ${v.acme.nextAttemptAt}${v.acme.failures > 0 ? `, ${v.acme.failures} failed in a row: ${v.acme.lastError ?? "?"}` : ""}`,
    ]);
  }
  if (v.agentCertificateNotAfter) lines.push(["agent cert expires", v.agentCertificateNotAfter]);
  lines.push(["problems", v.problems.length === 0 ? "none" : v.problems.join("; ")]);
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, val]) => `${k.padEnd(width)}  ${terminalText(String(val))}`).join("\n") + "\n";
}

export function registerMailStatus(program: Command, ctx: CliContext): void {
  program
    .command("mail:status [vnode]")
    .description(
      "mail health per vnode: daemons, queue, users, filters, disk, quota, TLS; stale health and lagging generations flagged",
    )
    .option("--json", "JSON output (same as --format json)")
    .option("--format <format>", "table | json | csv")
    .option("--history <n>", "with a vnode: include the last n health samples (JSON)", "0")
    .option("--sync-usage", "first fetch every mailbox's usage from the agent (shvmail shows it)")
    .option("--home <dir>", "controller home")
    .action(
      async (
        name: string | undefined,
        options: { json?: boolean; format?: string; history: string; syncUsage?: boolean; home?: string },
      ) => {
        const format = parseFormat(options.format, options.json);
        const paths = ctx.paths(options.home);
        const db = await ctx.openDb(paths);
        try {
          const em = db.em();
          if (name !== undefined && !(await em.findOne(Vnode, { name }))) throw notFound(`vnode ${name} not found`);
          if (options.syncUsage) {
            for (const v of await em.find(Vnode, name ? { name, status: "enrolled" } : { status: "enrolled" })) {
              const client = agentClientFor(paths, v, undefined, 60_000);
              try {
                const synced = await syncMailboxUsage(em, client, v.id);
                ctx.io.err(`${v.name}: usage of ${synced.mailboxes} mailboxes fetched, ${synced.updated} changed\n`);
              } catch (error) {
                ctx.io.err(`${v.name}: usage not fetched: ${(error as Error).message}\n`);
              } finally {
                client.close();
              }
            }
          }
          const history = Math.max(0, Math.min(1440, Number.parseInt(options.history, 10) || 0));
          const views = await mailStatus(em, { ...(name ? { vnode: name } : {}), historySamples: name ? history : 0 });
          if (format === "json") {
            ctx.io.out(JSON.stringify(name ? views[0] : views, null, 2) + "\n");
            return;
          }
          if (name && format === "table" && views[0]) {
            ctx.io.out(detail(views[0]));
            return;
          }
          ctx.io.out(
            formatRows(
              views.map(summaryRow),
              ["vnode", "health", "age", "generation", "services", "queue", "users", "disk", "quota90", "tls"],
              format,
            ),
          );
          if (format === "table")
            for (const v of views) for (const p of v.problems) ctx.io.out(`${v.vnode}: ${terminalText(p)}\n`);
        } finally {
          await db.close();
        }
      },
    );
}
