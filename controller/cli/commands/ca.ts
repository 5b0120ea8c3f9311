// `ca rotate`, `ca status`, `ca retire-old`: replacing the controller's CA with an overlap in
// which agents trust the old and the new CA (controller/pki/ca-rotation.ts has the whole story).
import type { Command } from "commander";
import { invalid, NetservaError } from "../../../common/errors.ts";
import { readControllerConfig } from "../../home/controller-config.ts";
import { audited } from "../../audit/audit.ts";
import { beginCaRotation, retireOldCa } from "../../pki/ca-rotation.ts";
import { caStatus } from "../../pki/ca-status.ts";
import { KEK_FILE_ENV, KEK_PREVIOUS_FILE_ENV, readKek, readKekFile, type Kek } from "../../pki/ca-seal.ts";
import { rekeyCa } from "../../pki/ca-rekey.ts";
import { materializeCa } from "../../pki/ca-store.ts";
import { runCaStep } from "../../pki/ca-step-lock.ts";
import type { Database } from "../../db/open-database.ts";
import type { CaStatus } from "../../pki/ca-status.ts";
import type { CliContext } from "../cli-context.ts";
import { formatRows, parseFormat } from "../format.ts";

function statusText(status: CaStatus): string {
  const cas = formatRows(status.cas, ["state", "pin", "serial", "notAfter", "createdAt", "retiredAt"], "table");
  const vnodes = formatRows(
    status.vnodes,
    ["vnode", "status", "certificate", "certificateCa", "trustsActive", "waitingFor"],
    "table",
  );
  const waiting = status.vnodes.filter((v) => v.waitingFor !== null).map((v) => v.vnode);
  const summary =
    status.phase === "single"
      ? "one CA: no rotation under way\n"
      : waiting.length > 0
        ? `rotation under way: ${waiting.length} vnode(s) still on the old CA: ${waiting.join(", ")}\n`
        : "rotation under way: every vnode is on the new CA; `netserva-mail ca retire-old` may go ahead\n";
  const old =
    status.oldCertificates.length > 0
      ? "certificates in use from the old CA:\n" +
        formatRows(status.oldCertificates, ["role", "identity", "serial", "notAfter"], "table")
      : "";
  return `${summary}\n${cas}\n${vnodes}${old ? "\n" + old : ""}`;
}

/** The controller a CA step runs on, for the step lock's label: a CLI may run without a home. */
function controllerName(configPath: string): string {
  try {
    return readControllerConfig(configPath).name;
  } catch {
    return "a CLI without a controller home";
  }
}

export function registerCa(program: Command, ctx: CliContext): void {
  /** The CA key-encryption key, on PostgreSQL (where several controllers share the CA). */
  const kekFor = (db: Database, c: CliContext): { kek?: Kek } => {
    const kek = db.kind === "postgresql" ? readKek(c.io.env) : undefined;
    return kek ? { kek } : {};
  };
  const ca = program
    .command("ca")
    .description("the controller's certificate authority: rotate, status, retire-old, rekey");

  ca.command("rotate")
    .description("begin a CA rotation: a new CA signs from now on, agents trust old and new until `ca retire-old`")
    .option("--days <n>", "validity of the new CA in days", "3650")
    .option("--home <dir>", "controller home")
    .action(async (options: { days: string; home?: string }) => {
      const days = Number(options.days);
      if (!Number.isInteger(days) || days < 1 || days > 36_600) throw invalid("days", "must be 1..36600");
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const config = readControllerConfig(paths.config);
        const controller = { validSeconds: config.controllerCertificateSeconds, name: config.name };
        const run = { step: "ca rotate" as const, controller: config.name, actor: ctx.actor };
        const begun = await audited(em, { actor: ctx.actor, command: "ca rotate", args: { days } }, () =>
          runCaStep(db, run, (tx) => beginCaRotation(tx, paths, { validDays: days, controller, ...kekFor(db, ctx) })),
        );
        ctx.io.out(
          `new CA ${begun.newPin} signs from now on (valid until ${begun.newNotAfter.toISOString()}); ` +
            `the old CA ${begun.oldPin} stays trusted until \`netserva-mail ca retire-old\`.\n` +
            `controller certificate reissued (${begun.controllerSerial}). A running \`serve\` pushes the new trust ` +
            "bundle to every agent and has them renew; follow with `netserva-mail ca status`.\n",
        );
      } finally {
        await db.close();
      }
    });

  ca.command("status")
    .description("CAs, certificates still from the old CA, and per vnode whether it is on the new CA")
    .option("--json", "JSON output")
    .option("--home <dir>", "controller home")
    .action(async (options: { json?: boolean; home?: string }) => {
      const format = parseFormat(undefined, options.json);
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        // This home brought up to date first when the database keeps the CA and we have the KEK.
        const { kek } = kekFor(db, ctx);
        if (kek) await materializeCa(db.em(), paths, kek);
        const status = await caStatus(db.em(), paths);
        ctx.io.out(format === "json" ? JSON.stringify(status, null, 2) + "\n" : statusText(status));
      } finally {
        await db.close();
      }
    });

  ca.command("rekey")
    .description(
      "re-seal the CA key(s) kept in PostgreSQL under a new key-encryption key, in one transaction " +
        `(give every controller the new KEK as ${KEK_FILE_ENV} and the old one as ${KEK_PREVIOUS_FILE_ENV} first)`,
    )
    .option("--new-kek-file <file>", `the new KEK (32 bytes, base64); default: the one in ${KEK_FILE_ENV}`)
    .option(
      "--force",
      "even while a running controller does not hold the new KEK (it is refused from its next CA step)",
    )
    .option("--home <dir>", "controller home")
    .action(async (options: { newKekFile?: string; force?: boolean; home?: string }) => {
      // Read before anything is opened: a bad file is refused naming the option, nothing changed.
      const kek = readKek(ctx.io.env);
      const next = options.newKekFile !== undefined ? readKekFile(options.newKekFile, "--new-kek-file") : kek;
      if (!next)
        throw invalid(
          "--new-kek-file",
          `name the new key-encryption key with --new-kek-file (or set ${KEK_FILE_ENV} to it and the old one as ${KEK_PREVIOUS_FILE_ENV})`,
        );
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        if (db.kind !== "postgresql")
          throw new NetservaError(
            "failed_precondition",
            "the embedded database keeps no CA key: it is in the controller home's ca/ only; `ca rekey` re-seals the key kept in PostgreSQL",
          );
        const em = db.em();
        const run = { step: "ca rekey" as const, controller: controllerName(paths.config), actor: ctx.actor };
        const force = options.force === true;
        const args = { ...(options.newKekFile !== undefined ? { newKekFile: options.newKekFile } : {}), force };
        const done = await audited(em, { actor: ctx.actor, command: "ca rekey", args }, () =>
          runCaStep(db, run, (tx) => rekeyCa(tx, kek, next, { force })),
        );
        if (done.resealed.length === 0) {
          ctx.io.out(`every CA key in the database is already sealed under ${next.source}: nothing changed\n`);
          return;
        }
        ctx.io.out(
          `re-sealed ${done.resealed.map((r) => `CA ${r.pin} (${r.state})`).join(", ")} under ${next.source} (KEK ${done.kekId}) ` +
            `(they were sealed under ${done.from.join(", ")}).\n` +
            `Every controller needs the new KEK from now on (${KEK_FILE_ENV}); once each has it, ` +
            `remove ${KEK_PREVIOUS_FILE_ENV} everywhere and destroy the old KEK.\n`,
        );
        for (const other of done.without)
          ctx.io.err(`warning: controller ${other} does not hold the new KEK: give it the new one and restart it\n`);
      } finally {
        await db.close();
      }
    });

  ca.command("retire-old")
    .description("end a CA rotation: only the new CA is trusted, the old key is destroyed")
    .option("--force", "even while vnodes still depend on the old CA (they are refused until re-enrolled)")
    .option("--home <dir>", "controller home")
    .action(async (options: { force?: boolean; home?: string }) => {
      const paths = ctx.paths(options.home);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const force = options.force === true;
        const run = {
          step: "ca retire-old" as const,
          controller: readControllerConfig(paths.config).name,
          actor: ctx.actor,
        };
        const retired = await audited(em, { actor: ctx.actor, command: "ca retire-old", args: { force } }, () =>
          runCaStep(db, run, (tx) => retireOldCa(tx, paths, { force, ...kekFor(db, ctx) })),
        );
        ctx.io.out(`old CA ${retired.retiredPin} retired: its certificates are refused from now on.\n`);
        for (const vnode of retired.stranded)
          ctx.io.err(`warning: vnode ${vnode} is stranded: re-enroll it with \`netserva-mail vnode token\`\n`);
        for (const other of retired.warnings)
          ctx.io.err(`warning: ${other} is from the old CA and now refused: issue a new one\n`);
      } finally {
        await db.close();
      }
    });
}
