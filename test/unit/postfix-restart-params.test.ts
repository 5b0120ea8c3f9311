// A reload does not rebind Postfix's listeners: taking over a stock main.cf must restart it.
import { describe, expect, it } from "vitest";
import { postfixNeedsRestart } from "../../agent/postfix/restart-params.ts";

const stock = "smtpd_banner = $myhostname ESMTP\ninet_interfaces = all\ninet_protocols = all\n";
const ours = "inet_interfaces = 192.0.2.10\ninet_protocols = ipv4\nmyhostname = mail.example.com\n";

describe("postfixNeedsRestart", () => {
  it("restarts when inet_interfaces or inet_protocols change (stock takeover, and its rollback)", () => {
    expect(postfixNeedsRestart(stock, ours)).toBe(true);
    expect(postfixNeedsRestart(ours, stock)).toBe(true);
    expect(postfixNeedsRestart(ours, ours.replace("ipv4", "all"))).toBe(true);
  });

  it("reloads for other changes, with defaults for absent parameters and the last assignment winning", () => {
    expect(postfixNeedsRestart(ours, ours.replace("mail.example.com", "mx.example.com"))).toBe(false);
    expect(postfixNeedsRestart("myhostname = a\n", "inet_interfaces = all\n")).toBe(false);
    expect(postfixNeedsRestart("inet_interfaces = a\ninet_interfaces = all\n", "")).toBe(false);
    expect(postfixNeedsRestart(undefined, ours)).toBe(false);
  });
});
