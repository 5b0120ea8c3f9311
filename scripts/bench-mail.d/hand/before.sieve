require ["fileinto", "mailbox", "variables", "duplicate"];
if header :matches "Received" "*(Postfix*" {
  if duplicate :uniqueid "${0}" {
    discard;
    stop;
  }
}
if anyof (header :is "X-Spam" "Yes", header :is "X-Spam-Flag" "YES") {
  fileinto :create "Junk";
  stop;
}
