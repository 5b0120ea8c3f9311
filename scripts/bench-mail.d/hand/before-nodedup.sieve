require ["fileinto", "mailbox"];
if anyof (header :is "X-Spam" "Yes", header :is "X-Spam-Flag" "YES") {
  fileinto :create "Junk";
  stop;
}
