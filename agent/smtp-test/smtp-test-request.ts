// RunSmtpTest on the agent: the controller asks this vnode to test another vnode's SMTP (the way
// an operator checks vnode-to-vnode delivery). The request is checked at the edge; the test
// itself is the shared probe in common/smtp-probe.
import { isIP } from "node:net";
import { create } from "@bufbuild/protobuf";
import {
  RunSmtpTestResponseSchema,
  SmtpTestStepSchema,
  type RunSmtpTestRequest,
  type RunSmtpTestResponse,
} from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { invalid } from "../../common/errors.ts";
import { isIdentityName } from "../../common/pki/roles.ts";
import {
  DEFAULT_STEP_TIMEOUT_MS,
  runSmtpTest,
  type SmtpTestOptions,
  type TlsMode,
} from "../../common/smtp-probe/run-smtp-test.ts";

const PORTS = new Set([25, 465, 587]);
const MODES = new Set(["starttls", "implicit", "none"]);
const ADDRESS = /^[^\s<>@]{1,64}@[^\s<>@]{1,253}$/;

function host(value: string, field: string): string {
  if (isIP(value) === 0 && !isIdentityName(value.toLowerCase()))
    throw invalid(field, "must be an IP address or a DNS name");
  return value;
}

function address(value: string, field: string): string {
  if (!ADDRESS.test(value)) throw invalid(field, "must be an email address");
  return value;
}

function bounded(value: number, fallback: number, max: number, field: string): number {
  if (value === 0) return fallback;
  if (value < 100 || value > max) throw invalid(field, `must be 100..${max} ms (0 = default)`);
  return value;
}

export function smtpTestOptions(r: RunSmtpTestRequest, vnode: string): SmtpTestOptions {
  if (!PORTS.has(r.port)) throw invalid("port", "must be 25, 465 or 587");
  const tlsMode = (r.tlsMode || (r.port === 465 ? "implicit" : "starttls")) as TlsMode;
  if (!MODES.has(tlsMode)) throw invalid("tls_mode", "must be starttls, implicit or none");
  const stepTimeoutMs = bounded(r.stepTimeoutMs, DEFAULT_STEP_TIMEOUT_MS, 60_000, "step_timeout_ms");
  return {
    host: host(r.host, "host"),
    port: r.port,
    tlsMode,
    serverName: host(r.serverName || r.host, "server_name"),
    ...(r.caPem ? { caPem: r.caPem } : {}),
    helo: host(r.helo || vnode, "helo"),
    ...(r.authUser ? { auth: { user: address(r.authUser, "auth_user"), password: r.authPassword } } : {}),
    ...(r.mailFrom ? { from: address(r.mailFrom, "mail_from") } : {}),
    ...(r.rcptTo ? { to: address(r.rcptTo, "rcpt_to") } : {}),
    ...(r.imapUser
      ? {
          imap: {
            user: address(r.imapUser, "imap_user"),
            password: r.imapPassword,
            port: r.imapPort || 993,
            timeoutMs: bounded(r.arrivalTimeoutMs, 30_000, 120_000, "arrival_timeout_ms"),
          },
        }
      : {}),
    stepTimeoutMs,
    fromVnode: vnode,
  };
}

export async function handleSmtpTest(r: RunSmtpTestRequest, vnode: string): Promise<RunSmtpTestResponse> {
  const result = await runSmtpTest(smtpTestOptions(r, vnode));
  return create(RunSmtpTestResponseSchema, {
    ok: result.ok,
    token: result.token,
    messageId: result.messageId,
    fromVnode: vnode,
    steps: result.steps.map((s) => create(SmtpTestStepSchema, s)),
  });
}
