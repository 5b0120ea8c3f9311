// master.cf: every service unchrooted (chroot "n") because the sqlite DB and Dovecot's sockets
// live outside any chroot; 25 for inbound, 587 (STARTTLS required) and 465 (implicit TLS) for
// authenticated submission with the sender bound to the login.
const SUBMISSION_OPTS = [
  "smtpd_sasl_auth_enable=yes",
  "smtpd_tls_auth_only=yes",
  "smtpd_client_restrictions=permit_sasl_authenticated,reject",
  "smtpd_sender_restrictions=reject_sender_login_mismatch,permit_sasl_authenticated,reject",
  "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
  "smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
  "milter_macro_daemon_name=ORIGINATING",
];

const service = (line: string, opts: string[] = []): string => [line, ...opts.map((o) => `  -o ${o}`)].join("\n");

export function renderMasterCf(): string {
  const lines = [
    "# Rendered by netserva-mail; edits are overwritten.",
    "# service type  private unpriv  chroot  wakeup  maxproc command + args",
    service("smtp       inet  n       -       n       -       -       smtpd"),
    service("submission inet  n       -       n       -       -       smtpd", [
      "syslog_name=postfix/submission",
      "smtpd_tls_security_level=encrypt",
      ...SUBMISSION_OPTS,
    ]),
    service("smtps      inet  n       -       n       -       -       smtpd", [
      "syslog_name=postfix/smtps",
      "smtpd_tls_wrappermode=yes",
      ...SUBMISSION_OPTS,
    ]),
    "pickup     unix  n       -       n       60      1       pickup",
    "cleanup    unix  n       -       n       -       0       cleanup",
    "qmgr       unix  n       -       n       300     1       qmgr",
    "tlsmgr     unix  -       -       n       1000?   1       tlsmgr",
    "rewrite    unix  -       -       n       -       -       trivial-rewrite",
    "bounce     unix  -       -       n       -       0       bounce",
    "defer      unix  -       -       n       -       0       bounce",
    "trace      unix  -       -       n       -       0       bounce",
    "verify     unix  -       -       n       -       1       verify",
    "flush      unix  n       -       n       1000?   0       flush",
    "proxymap   unix  -       -       n       -       -       proxymap",
    "proxywrite unix  -       -       n       -       1       proxymap",
    "smtp       unix  -       -       n       -       -       smtp",
    "relay      unix  -       -       n       -       -       smtp",
    "showq      unix  n       -       n       -       -       showq",
    "error      unix  -       -       n       -       -       error",
    "retry      unix  -       -       n       -       -       error",
    "discard    unix  -       -       n       -       -       discard",
    "lmtp       unix  -       -       n       -       -       lmtp",
    "anvil      unix  -       -       n       -       1       anvil",
    "scache     unix  -       -       n       -       1       scache",
    "postlog    unix-dgram n  -       n       -       1       postlogd",
  ];
  return `${lines.join("\n")}\n`;
}
