// sc(): init-system detection and the unit names a private root maps to.
import { describe, expect, it } from "vitest";
import { createVnodePaths } from "../../agent/paths.ts";
import { dovecotService, escapeRoot, postfixService } from "../../agent/sc/mail-services.ts";
import { openrcStatus, systemdStatus } from "../../agent/sc/init-backends.ts";
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
    // Debian's postfix.service is a oneshot: the state that counts is its main instance's.
    expect(postfixService(sys).systemdStatusUnit).toBe("postfix@-.service");
    expect(dovecotService(sys).systemdStatusUnit).toBeUndefined();
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

  it("reports the service manager's own view: systemd's ActiveState (SubState), OpenRC's status", () => {
    expect(systemdStatus("postfix", "ActiveState=active\nSubState=running\nMainPID=812\n")).toEqual({
      name: "postfix",
      running: true,
      pid: 812,
      detail: "systemd: active (running)",
    });
    expect(systemdStatus("rspamd", "ActiveState=failed\nSubState=failed\nMainPID=0\n")).toEqual({
      name: "rspamd",
      running: false,
      detail: "systemd: failed (failed)",
    });
    expect(systemdStatus("dovecot", "ActiveState=reloading\nSubState=reload\nMainPID=9\n").running).toBe(true);
    expect(openrcStatus("dovecot", 0, " * status: started\n")).toEqual({
      name: "dovecot",
      running: true,
      detail: "openrc: started",
    });
    expect(openrcStatus("rspamd", 32, " * status: crashed\n")).toEqual({
      name: "rspamd",
      running: false,
      detail: "openrc: crashed",
    });
    expect(openrcStatus("postfix", 3, " * status: stopped\n").running).toBe(false);
    // An LSB script under Debian's OpenRC answers in its own words: the exit code decides.
    expect(openrcStatus("postfix", 0, "postfix is running.\n")).toEqual({
      name: "postfix",
      running: true,
      detail: "openrc: postfix is running.",
    });
  });

  it("refuses path segments that would climb out of the mail root", () => {
    const p = createVnodePaths("/r");
    expect(p.maildir("example.com", "alice")).toBe("/r/srv/example.com/msg/alice/Maildir");
    expect(() => p.mailHome("..", "alice")).toThrow(/unsafe/);
    expect(() => p.mailHome("example.com", "a/b")).toThrow(/unsafe/);
  });
});
