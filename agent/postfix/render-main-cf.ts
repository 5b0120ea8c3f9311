// main.cf for a Postfix that hosts only virtual domains: everything is delivered to Dovecot over
// LMTP, unknown recipients are refused at RCPT (550 5.1.1), nothing relays without SASL, and
// map files are named relative to $config_directory so a staged copy validates its own maps.
import { type PostfixRenderOptions, cfValue } from "./render-options.ts";
import type { MapName } from "./render-maps.ts";

const DEFAULT_SUBMIT_USERS = ["root", "postfix"];

/** Postfix's service_throttle_time as rendered (its own default is 60 s). */
export const POSTFIX_THROTTLE_SECONDS = 5;

/** Plain login names only: a "type:table" or "!name" here would change what the list means. */
function submitUsers(names: readonly string[]): string {
  for (const n of names) if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(n)) throw new Error(`unsafe submit user ${n}`);
  return names.join(", ");
}

export function renderMainCf(o: PostfixRenderOptions): string {
  const p = o.paths;
  const map = (name: MapName): string => `sqlite:$config_directory/sqlite-${name}.cf`;
  const v4Only = o.listenAddresses.length > 0 && o.listenAddresses.every((a) => !a.includes(":"));
  const entries: Array<[string, string]> = [
    ["compatibility_level", "3.6"],
    ["queue_directory", p.postfixQueueDir],
    ["data_directory", p.postfixDataDir],
    ["meta_directory", p.postfixDir],
    ["mail_owner", "postfix"],
    ["setgid_group", "postdrop"],
    ["myhostname", o.mailHostname],
    ["myorigin", "$myhostname"],
    ["smtpd_banner", "$myhostname ESMTP"],
    ["biff", "no"],
    ["append_dot_mydomain", "no"],
    ["inet_interfaces", o.listenAddresses.length > 0 ? o.listenAddresses.join(", ") : "all"],
    ["inet_protocols", v4Only ? "ipv4" : "all"],
    // Hosted domains are all virtual: no local delivery, no /etc/aliases.
    ["mydestination", ""],
    ["local_recipient_maps", ""],
    ["local_transport", "error:5.1.1 local delivery is disabled"],
    ["alias_maps", ""],
    ["alias_database", ""],
    // Local submission (sendmail/postdrop) only for those who must: root, Postfix itself and the
    // vmail user (Sieve vacation and redirect). Their mail is DKIM-signed as local mail, so any
    // other local account could otherwise sign mail as any hosted domain. The queue lists every
    // customer's senders and recipients: root only.
    ["authorized_submit_users", submitUsers(o.submitUsers ?? DEFAULT_SUBMIT_USERS)],
    ["authorized_mailq_users", "root"],
    ["authorized_flush_users", "root"],
    ["mynetworks", (o.mynetworks ?? ["127.0.0.0/8", "[::1]/128"]).join(" ")],
    ["virtual_mailbox_domains", map("virtual-domains")],
    ["virtual_mailbox_maps", map("virtual-mailboxes")],
    // Explicit aliases (and @domain catch-alls) first, then each mailbox maps to itself so a
    // catch-all never swallows mail for a real mailbox.
    ["virtual_alias_maps", `${map("virtual-aliases")}, ${map("virtual-mailbox-self")}`],
    ["virtual_transport", `lmtp:unix:${p.dovecotLmtpSocket}`],
    ["smtpd_sender_login_maps", map("sender-login")],
    ["smtpd_reject_unlisted_recipient", "yes"],
    ["unknown_virtual_mailbox_reject_code", "550"],
    ["smtpd_helo_required", "yes"],
    ["disable_vrfy_command", "yes"],
    ["strict_rfc821_envelopes", "yes"],
    // SMTP smuggling (CVE-2023-51764): only <CR><LF>.<CR><LF> ends DATA, a bare <LF> inside is
    // read as <CR><LF>; clients on mynetworks keep the old reading (Postfix's own exclusion).
    // A client that pipelines where RFC 2920 forbids it (the smuggler's second transaction
    // rides in the same packet) is disconnected.
    ["smtpd_forbid_bare_newline", "normalize"],
    ["smtpd_forbid_bare_newline_exclusions", "$mynetworks"],
    ["smtpd_forbid_unauth_pipelining", "yes"],
    ["smtpd_relay_restrictions", "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"],
    [
      "smtpd_recipient_restrictions",
      `reject_unlisted_recipient, check_policy_service unix:${p.dovecotQuotaStatusSocket}`,
    ],
    // SASL is offered only on submission/smtps (master.cf) and answered by Dovecot.
    ["smtpd_sasl_type", "dovecot"],
    ["smtpd_sasl_path", p.dovecotAuthSocket],
    ["smtpd_sasl_auth_enable", "no"],
    // A service whose new process dies before serving anybody is throttled this long. Its causes
    // here are transient (an smtpd that found Dovecot's auth socket mid-reload; a lookup that
    // failed once) and Postfix's 60 s default left 465/587 or delivery stalled for a minute; the
    // apply's verification waits out this much (mail/sasl-outage.ts).
    ["service_throttle_time", `${POSTFIX_THROTTLE_SECONDS}s`],
    // One file, one rename: never a new key with an old certificate (mail/tls-files.ts).
    ["smtpd_tls_chain_files", p.tlsKeyAndChain],
    // Hosted domains with their own names (mail.<domain>): their certificate by SNI.
    ...((o.sni ?? []).length > 0
      ? [["tls_server_sni_maps", "texthash:$config_directory/sni"] as [string, string]]
      : []),
    ["smtpd_tls_security_level", "may"],
    ["smtpd_tls_auth_only", "yes"],
    ["smtpd_tls_protocols", ">=TLSv1.2"],
    ["smtpd_tls_mandatory_protocols", ">=TLSv1.2"],
    ["smtpd_tls_loglevel", "1"],
    ["smtp_tls_security_level", "may"],
    ["maillog_file", p.postfixLog],
    ["maillog_file_prefixes", p.postfixLogDir],
    ...(o.installParams ?? []).map(([k, v]): [string, string] => [k, v]),
  ];
  if (o.rspamdEnabled) {
    if (!o.milterAddress) throw new Error("rspamd is enabled but no milter address was given");
    entries.push(
      ["smtpd_milters", o.milterAddress],
      ["non_smtpd_milters", o.milterAddress],
      // A filter outage defers mail (4xx, the sender retries) rather than letting it in unscanned.
      ["milter_default_action", "tempfail"],
      ["milter_protocol", "6"],
      ["milter_mail_macros", "i {mail_addr} {client_addr} {client_name} {auth_authen}"],
    );
  }
  // Overrides replace a rendered entry in place (a duplicate would make postconf warn).
  for (const [k, v] of o.extraMainCf ?? []) {
    const at = entries.findIndex(([name]) => name === k);
    if (at >= 0) entries[at] = [k, v];
    else entries.push([k, v]);
  }
  return `# Rendered by netserva-mail; edits are overwritten.\n${entries.map(([k, v]) => cfValue(k, v)).join("\n")}\n`;
}
