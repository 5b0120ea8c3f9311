// The global script that runs before each user's own Sieve script.
//
// 1. A repeated delivery of one queued message is dropped. Postfix delivers at least once: when a
//    delivery is cut off after Dovecot saved the message but before Postfix read a 250 (a Postfix
//    stop or restart ends its delivery agents at once, a crash likewise; a reloading Dovecot was
//    seen answering "421 4.3.2 Shutting down" to the end of DATA after it had stored the
//    message), Postfix delivers the same queue file again. Our own Postfix's Received line (the
//    topmost one naming Postfix: queue id, time, client, recipient) is identical on every attempt
//    for one queue file and differs between two messages, so it is the key: a retried delivery
//    is dropped, and two messages that merely share a Message-ID are both kept. Dovecot records
//    the key only once the message is stored, and keeps it for sieve_duplicate_default_period
//    (12 h).
// 2. Mail the spam filter marked (Rspamd's "X-Spam: Yes", SpamAssassin-style "X-Spam-Flag:
//    YES") is filed into Junk.
export function renderSieveBefore(): string {
  return [
    "# Rendered by netserva-mail; edits are overwritten.",
    'require ["fileinto", "mailbox", "variables", "duplicate"];',
    'if header :matches "Received" "*(Postfix*" {',
    '  if duplicate :uniqueid "${0}" {',
    "    discard;",
    "    stop;",
    "  }",
    "}",
    'if anyof (header :is "X-Spam" "Yes", header :is "X-Spam-Flag" "YES") {',
    '  fileinto :create "Junk";',
    "  stop;",
    "}",
    "",
  ].join("\n");
}
