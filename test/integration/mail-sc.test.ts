// sc(): init-system detection and the unit names a private root maps to.
import { describe, expect, it } from "vitest";
import { createVnodePaths } from "../../agent/paths.ts";
import { dovecotService, escapeRoot, postfixService } from "../../agent/sc/mail-services.ts";
import { detectInitSystem } from "../../agent/sc/service-control.ts";

describe("sc", () => {
  it("detects systemd, then OpenRC, else direct", () => {
    expect(detectInitSystem((p) => p === "/run/systemd/system")).toBe("systemd");
    expect(detectInitSystem((p) => p === "/sbin/openrc-run")).toBe("openrc");
    expect(detectInitSystem((p) => p === "/run/openrc")).toBe("openrc");
    expect(detectInitSystem(() => false)).toBe("direct");
  });

  it("uses the stock units for root / and template units for a private root", () => {
    const sys = createVnodePaths("/");
    expect(postfixService(sys).systemdUnit).toBe("postfix.service");
    expect(dovecotService(sys).openrcService).toBe("dovecot");
    const priv = createVnodePaths("/srv/vnodes/one");
    expect(escapeRoot(priv.root)).toBe("srv-vnodes-one");
    expect(postfixService(priv).systemdUnit).toBe("netserva-postfix@srv-vnodes-one.service");
    expect(postfixService(priv).direct.start).toEqual({
      file: "postfix",
      args: ["-c", "/srv/vnodes/one/etc/postfix", "start"],
    });
    expect(dovecotService(priv).direct.start).toEqual({
      file: "dovecot",
      args: ["-c", "/srv/vnodes/one/etc/dovecot/dovecot.conf"],
    });
  });

  it("refuses path segments that would climb out of the mail root", () => {
    const p = createVnodePaths("/r");
    expect(p.maildir("example.com", "alice")).toBe("/r/srv/example.com/msg/alice/Maildir");
    expect(() => p.mailHome("..", "alice")).toThrow(/unsafe/);
    expect(() => p.mailHome("example.com", "a/b")).toThrow(/unsafe/);
  });
});
