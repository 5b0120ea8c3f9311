// One dovecot.conf (no conf.d): IMAP/POP3 with STARTTLS and implicit TLS, LMTP and SASL auth for
// Postfix on unix sockets, ManageSieve, quota (with a policy service Postfix asks at RCPT) and
// Sieve. Nested blocks are written one setting per line: Dovecot 2.3 rejects some one-liners.
import { type DovecotRenderOptions, confValue } from "./render-options.ts";

type Block = { name: string; body: Array<string | Block> };
const block = (name: string, ...body: Array<string | Block>): Block => ({ name, body });

function write(b: Block, indent = ""): string {
  const inner = b.body.map((x) => (typeof x === "string" ? `${indent}  ${x}` : write(x, `${indent}  `)));
  return [`${indent}${b.name} {`, ...inner, `${indent}}`].join("\n");
}

export function renderDovecotConf(o: DovecotRenderOptions): string {
  const p = o.paths;
  const mailbox = (name: string, use: string): Block =>
    block(`mailbox ${name}`, `special_use = \\${use}`, "auto = subscribe");
  const top = [
    "# Rendered by netserva-mail; edits are overwritten.",
    `instance_name = ${confValue(p.dovecotInstanceName)}`,
    `base_dir = ${confValue(p.dovecotBaseDir)}`,
    `state_dir = ${confValue(p.dovecotStateDir)}`,
    `log_path = ${confValue(p.dovecotLog)}`,
    "protocols = imap pop3 lmtp sieve",
    `listen = ${o.listenAddresses.length > 0 ? o.listenAddresses.map(confValue).join(", ") : "*, ::"}`,
    `hostname = ${confValue(o.mailHostname)}`,
    `postmaster_address = postmaster@${confValue(o.mailHostname)}`,
    "ssl = required",
    `ssl_cert = <${confValue(p.tlsCert)}`,
    `ssl_key = <${confValue(p.tlsKey)}`,
    "ssl_min_protocol = TLSv1.2",
    "ssl_prefer_server_ciphers = yes",
    "disable_plaintext_auth = yes",
    "auth_mechanisms = plain login",
    "auth_username_format = %Lu",
    "auth_verbose = yes",
    `first_valid_uid = ${o.vmailUid}`,
    `first_valid_gid = ${o.vmailGid}`,
    "mail_location = maildir:~/Maildir",
    // Over-quota mail is refused at SMTP RCPT by the quota-status policy (Postfix asks it); the
    // quota plugin still refuses a delivery that would overflow. Dovecot's own check at LMTP RCPT
    // (lmtp_rcpt_check_quota) would recount the quota once more per message for nothing the
    // sender sees: +1.1-1.6 ms of LMTP CPU per message in scripts/bench-mail.
    "mail_plugins = quota",
    // A reload (how every config change and certificate swap is applied) keeps open sessions:
    // with the default (yes) Dovecot 2.3 ends IMAP sessions, IDLE ones included, with
    // "* BYE Server shutting down."; with no, the running imap-login (which holds the TLS session)
    // and imap processes finish their clients on the old config and new connections get the new
    // one. The same holds for a stop: sessions end when their clients leave.
    "shutdown_clients = no",
    "lmtp_save_to_detail_mailbox = no",
  ];
  const blocks: Block[] = [
    block("passdb", "driver = sql", `args = ${confValue(p.dovecotSqlConf)}`),
    // A login takes its user fields from the passdb row it just read (password_query returns
    // userdb_home/uid/gid/quota_rule): one SQL lookup per login instead of two. LMTP, the
    // quota-status policy and doveadm make no passdb lookup and fall through to the sql userdb.
    block("userdb", "driver = prefetch"),
    block("userdb", "driver = sql", `args = ${confValue(p.dovecotSqlConf)}`),
    block(
      "namespace inbox",
      "inbox = yes",
      "separator = /",
      mailbox("Drafts", "Drafts"),
      mailbox("Junk", "Junk"),
      mailbox("Sent", "Sent"),
      mailbox("Trash", "Trash"),
    ),
    // No process_min_avail here: a login process started ahead that is idle when an apply
    // reloads Dovecot can take a connection and be killed in the middle of its TLS handshake
    // (seen as a closed connection right after the reload, 1 run in 2 of mail-vnode). It would
    // save ~9 ms of the first login; a reload that keeps serving matters more.
    block(
      "service imap-login",
      block("inet_listener imap", "port = 143"),
      block("inet_listener imaps", "port = 993", "ssl = yes"),
    ),
    block(
      "service pop3-login",
      block("inet_listener pop3", "port = 110"),
      block("inet_listener pop3s", "port = 995", "ssl = yes"),
    ),
    block("service managesieve-login", block("inet_listener sieve", "port = 4190")),
    block("service lmtp", block("unix_listener lmtp", "user = postfix", "group = postfix", "mode = 0600")),
    block(
      "service auth",
      block("unix_listener auth-postfix", "user = postfix", "group = postfix", "mode = 0660"),
      block("unix_listener auth-userdb", "user = root", "mode = 0600"),
    ),
    block(
      "service quota-status",
      "executable = quota-status -p postfix",
      "client_limit = 1",
      block("unix_listener quota-status", "user = postfix", "group = postfix", "mode = 0660"),
    ),
    block("protocol imap", "mail_plugins = $mail_plugins imap_quota"),
    block("protocol pop3", "mail_plugins = $mail_plugins"),
    block("protocol lmtp", "mail_plugins = $mail_plugins sieve"),
    block("protocol sieve", "managesieve_max_line_length = 65536"),
    block(
      "plugin",
      "quota = count:User quota",
      "quota_vsizes = yes",
      "quota_status_success = DUNNO",
      "quota_status_nouser = DUNNO",
      'quota_status_overquota = "552 5.2.2 Mailbox is full"',
      "quota_exceeded_message = 5.2.2 Mailbox is full",
      "sieve = file:~/sieve;active=~/.dovecot.sieve",
      `sieve_before = ${confValue(p.dovecotSieveBefore)}`,
    ),
  ];
  // SNI: a hosted domain's own mail host name gets its own certificate (exact names only).
  for (const e of o.sni ?? [])
    for (const name of e.names)
      if (!name.startsWith("*."))
        blocks.push(
          block(`local_name ${confValue(name)}`, `ssl_cert = <${confValue(e.cert)}`, `ssl_key = <${confValue(e.key)}`),
        );
  if (o.authPenalty === false) {
    blocks.push(block("service anvil", block("unix_listener anvil-auth-penalty", "mode = 0")));
    top.push("auth_failure_delay = 0");
  }
  return `${[...top, ...blocks.map((b) => write(b)), ...(o.extraConf ?? []).map(confValue)].join("\n")}\n`;
}
