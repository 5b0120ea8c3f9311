// The global script that runs before each user's own Sieve script: mail the spam filter marked
// (Rspamd's "X-Spam: Yes", SpamAssassin-style "X-Spam-Flag: YES") is filed into Junk.
export function renderSieveBefore(): string {
  return [
    "# Rendered by netserva-mail; edits are overwritten.",
    'require ["fileinto", "mailbox"];',
    'if anyof (header :is "X-Spam" "Yes", header :is "X-Spam-Flag" "YES") {',
    '  fileinto :create "Junk";',
    "  stop;",
    "}",
    "",
  ].join("\n");
}
