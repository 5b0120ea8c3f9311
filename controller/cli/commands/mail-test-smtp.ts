// `mail:test-smtp <vnode>`: a vnode's SMTP tested step by step, from the controller or (with
// --from-vnode) from another vnode's agent through the typed RunSmtpTest command. Exit 0 only
// when every step passed; otherwise 5 and the failed step and why on stderr.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Command } from "commander";
import { create } from "@bufbuild/protobuf";
import { RunSmtpTestRequestSchema } from "../../../common/gen/netserva/mail/v1/agent_pb.ts";
import { NetservaError, invalid, notFound } from "../../../common/errors.ts";
import { isIdentityName } from "../../../common/pki/roles.ts";
import { DEFAULT_STEP_TIMEOUT_MS, runSmtpTest, type SmtpTestResult } from "../../../common/smtp-probe/run-smtp-test.ts";
import { audited } from "../../audit/audit.ts";
import { Vnode } from "../../db/entities/index.ts";
import { agentClientFor } from "../../fleet/agent-for-vnode.ts";
import { readCaFiles } from "../../pki/ca-files.ts";
import { smtpTarget } from "../../health/smtp-test-target.ts";
import { terminalLines, terminalText } from "../terminal-text.ts";
import type { CliContext } from "../cli-context.ts";

interface Flags {
  to?: string;
  from?: string;
  port?: string;
  tls?: string;
  auth?: string;
  passwordStdin?: boolean;
  imapPasswordStdin?: boolean;
  host?: string;
  serverName?: string;
  ca?: string;
  helo?: string;
  fromVnode?: string;
  timeout: string;
  arrivalTimeout: string;
  json?: boolean;
  home?: string;
}

/** `--ca FILE`: the trust anchors the certificate must chain to (PEM certificates only). */
function readCaFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw invalid("ca", `cannot read ${file}`);
  }
  if (!/-----BEGIN CERTIFICATE-----/.test(text)) throw invalid("ca", `${file} holds no PEM certificate`);
  return text;
}

const ADDRESS = /^[^\s<>@]{1,64}@[^\s<>@]{1,253}$/;

function ms(value: string, field: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 100 || n > max) throw invalid(field, `must be 100..${max} milliseconds`);
  return n;
}

function render(result: SmtpTestResult, header: string): string {
  const lines = [header];
  for (const s of result.steps)
    lines.push(`  ${s.ok ? "ok  " : "FAIL"}  ${s.name.padEnd(8)} ${s.ms.toFixed(1).padStart(8)} ms  ${s.detail}`);
  const failed = result.steps.find((s) => !s.ok);
  lines.push(
    failed
      ? `result: FAILED at ${failed.name}: ${failed.detail}`
      : `result: ok (${result.steps.length} steps${result.token ? `, token ${result.token}` : ""})`,
  );
  return lines.join("\n") + "\n";
}

export function registerMailTestSmtp(program: Command, ctx: CliContext): void {
  program
    .command("mail:test-smtp <vnode>")
    .description(
      "test a vnode's SMTP step by step (connect, banner, EHLO, TLS, AUTH, MAIL/RCPT/DATA, IMAP arrival), each timed",
    )
    .option("--to <address>", "send a test message to this address (default: the --auth address)")
    .option("--from <address>", "envelope sender (default: the --auth address, else postmaster@<helo>)")
    .option("--port <port>", "25 | 465 | 587", "25")
    .option("--tls <mode>", "starttls | implicit | none (default: implicit on 465, else starttls)")
    .option("--auth <email>", "authenticate as this mailbox (password from --password-stdin)")
    .option("--password-stdin", "read the AUTH password from the first line of stdin")
    .option(
      "--imap-password-stdin",
      "read the --to mailbox's IMAP password from stdin (the next line) and wait for the message to arrive",
    )
    .option("--host <address>", "connect here instead of the vnode's mail address")
    .option(
      "--server-name <name>",
      "the name the certificate must match (default: the vnode's mail host name), e.g. an MX name",
    )
    .option("--ca <file>", "trust these PEM CA certificates instead of the controller's (e.g. an ACME server's root)")
    .option("--helo <name>", "EHLO name (default: this host's name, or the sending vnode's)")
    .option("--from-vnode <vnode>", "run the test on this vnode's agent (vnode-to-vnode delivery)")
    .option("--timeout <ms>", "per-step timeout", String(DEFAULT_STEP_TIMEOUT_MS))
    .option("--arrival-timeout <ms>", "how long to wait for the message over IMAP", "30000")
    .option("--json", "JSON output")
    .option("--home <dir>", "controller home")
    .action(async (name: string, flags: Flags) => {
      if (flags.auth !== undefined && !ADDRESS.test(flags.auth)) throw invalid("auth", "must be an email address");
      if (flags.to !== undefined && !ADDRESS.test(flags.to)) throw invalid("to", "must be an email address");
      if (flags.from !== undefined && !ADDRESS.test(flags.from)) throw invalid("from", "must be an email address");
      if (flags.helo !== undefined && !isIdentityName(flags.helo.toLowerCase()))
        throw invalid("helo", "must be a DNS name");
      if (flags.serverName !== undefined && !isIdentityName(flags.serverName.toLowerCase()))
        throw invalid("server-name", "must be a DNS name");
      if (flags.auth && !flags.passwordStdin)
        throw invalid("password-stdin", "--auth needs the password on stdin (--password-stdin)");
      const stepTimeoutMs = ms(flags.timeout, "timeout", 60_000);
      const arrivalTimeoutMs = ms(flags.arrivalTimeout, "arrival-timeout", 120_000);
      const input = flags.passwordStdin || flags.imapPasswordStdin ? (await ctx.io.readStdin()).split(/\r?\n/) : [];
      const password = flags.passwordStdin ? (input.shift() ?? "") : "";
      const imapPassword = flags.imapPasswordStdin ? (input.shift() ?? "") : undefined;
      const to = flags.to ?? flags.auth;
      // A readable mailbox: its own IMAP password, or the AUTH credentials when it is the AUTH mailbox.
      const imap =
        to && (imapPassword !== undefined || (flags.auth !== undefined && flags.auth === to))
          ? { user: to, password: imapPassword ?? password, port: 993, timeoutMs: arrivalTimeoutMs }
          : undefined;
      const paths = ctx.paths(flags.home);
      const db = await ctx.openDb(paths);
      try {
        const em = db.em();
        const vnode = await em.findOne(Vnode, { name });
        if (!vnode) throw notFound(`vnode ${name} not found`);
        const target = smtpTarget(vnode, {
          ...(flags.host ? { host: flags.host } : {}),
          ...(flags.port ? { port: flags.port } : {}),
          ...(flags.tls ? { tls: flags.tls } : {}),
        });
        if (flags.serverName) target.serverName = flags.serverName.toLowerCase();
        const caPem = flags.ca !== undefined ? readCaFile(flags.ca) : readCaFiles(paths).trustPem;
        const args = {
          port: target.port,
          tls: target.tlsMode,
          to: flags.to,
          auth: flags.auth,
          fromVnode: flags.fromVnode,
          host: target.host,
        };
        const result = await audited(
          em,
          { actor: ctx.actor, command: "mail:test-smtp", vnodeName: name, args },
          async () => {
            if (!flags.fromVnode) {
              return runSmtpTest({
                ...target,
                caPem,
                helo: flags.helo ?? (hostname().toLowerCase() || "localhost"),
                stepTimeoutMs,
                ...(flags.auth ? { auth: { user: flags.auth, password } } : {}),
                ...(flags.from ? { from: flags.from } : {}),
                ...(to ? { to } : {}),
                ...(imap ? { imap } : {}),
              });
            }
            const from = await em.findOne(Vnode, { name: flags.fromVnode });
            if (!from) throw notFound(`vnode ${flags.fromVnode} not found`);
            if (from.status !== "enrolled")
              throw new NetservaError(
                "failed_precondition",
                `vnode ${from.name} is ${from.status}: its agent cannot run the test`,
              );
            const steps = 10;
            const client = agentClientFor(paths, from, undefined, stepTimeoutMs * steps + arrivalTimeoutMs + 5000);
            try {
              const r = await client.call(
                "runSmtpTest",
                create(RunSmtpTestRequestSchema, {
                  host: target.host,
                  port: target.port,
                  tlsMode: target.tlsMode,
                  serverName: target.serverName,
                  caPem,
                  authUser: flags.auth ?? "",
                  authPassword: password,
                  mailFrom: flags.from ?? "",
                  rcptTo: to ?? "",
                  helo: flags.helo ?? "",
                  stepTimeoutMs,
                  imapUser: imap?.user ?? "",
                  imapPassword: imap?.password ?? "",
                  imapPort: imap?.port ?? 0,
                  arrivalTimeoutMs,
                }),
              );
              return {
                ok: r.ok,
                token: r.token,
                messageId: r.messageId,
                steps: r.steps.map((s) => ({
                  name: s.name,
                  ok: s.ok,
                  ms: s.ms,
                  detail: s.detail,
                  facts: { ...s.facts },
                })),
              };
            } finally {
              client.close();
            }
          },
        );
        const header = `mail:test-smtp ${name}: ${target.host}:${target.port} ${target.tlsMode}, name ${target.serverName}, from ${flags.fromVnode ? `vnode ${flags.fromVnode}` : "the controller"}`;
        if (flags.json) {
          ctx.io.out(
            JSON.stringify(
              {
                vnode: name,
                fromVnode: flags.fromVnode ?? null,
                host: target.host,
                port: target.port,
                tls: target.tlsMode,
                serverName: target.serverName,
                ...result,
              },
              null,
              2,
            ) + "\n",
          );
        } else {
          ctx.io.out(terminalLines(render(result, header)));
        }
        const failed = result.steps.find((s) => !s.ok);
        if (failed)
          throw new NetservaError(
            "unavailable",
            `SMTP test of ${name} failed at ${failed.name}: ${terminalText(failed.detail)}`,
          );
      } finally {
        await db.close();
      }
    });
}
