// The filter half of an apply decides, before Postfix is reloaded onto the milter, which filters
// to start and which to reload. A recording ServiceControl stands in for sc() here (no daemons):
// the real daemons go through the same path in filter-rspamd, mail-filter and booted-systemd.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createFilterConfig } from "../../agent/mail/filter-config.ts";
import { createVnodePaths } from "../../agent/paths.ts";
import { createServiceRegistry } from "../../agent/sc/service-definition.ts";
import type { ServiceControl } from "../../agent/sc/service-control.ts";

const root = mkdtempSync(join(tmpdir(), "nsm-filter-reloader-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function recordingSc(runningNow: Set<string>): { sc: ServiceControl; calls: string[] } {
  const calls: string[] = [];
  const act = (verb: string) => async (name: string) => {
    calls.push(`${verb} ${name}`);
    if (verb === "start" || verb === "restart") runningNow.add(name);
    if (verb === "stop") runningNow.delete(name);
  };
  const sc: ServiceControl = {
    kind: "direct",
    registry: createServiceRegistry(),
    start: act("start"),
    reload: act("reload"),
    restart: act("restart"),
    stop: act("stop"),
    enable: act("enable"),
    status: async (name) => ({ name, running: runningNow.has(name) }),
  };
  return { sc, calls };
}

describe("filter reloader", () => {
  const paths = createVnodePaths(root);

  it("starts a wanted Rspamd that is not running even when its files did not change", async () => {
    // The retry of a rolled-back enable: local.d is on disk already, only main.cf changes.
    const { sc, calls } = recordingSc(new Set());
    const filters = createFilterConfig({ paths, sc });
    const r = filters.reloader({ rspamd: true, clamd: false });
    await r.forward([paths.postfixMainCf]);
    expect(calls).toEqual(["enable rspamd", "start rspamd"]);
    expect(r.started()).toEqual(["rspamd"]);
    // Rolled back: what forward() started is stopped again.
    await r.undo();
    expect(calls.at(-1)).toBe("stop rspamd");
  });

  it("reloads a running Rspamd only when its files changed", async () => {
    const { sc, calls } = recordingSc(new Set(["rspamd"]));
    const filters = createFilterConfig({ paths, sc });
    await filters.reloader({ rspamd: true, clamd: false }).forward([paths.postfixMainCf]);
    expect(calls).toEqual([]);
    await filters
      .reloader({ rspamd: true, clamd: false })
      .forward([join(filters.rspamdPaths.confDir, "local.d", "actions.conf")]);
    expect(calls).toEqual(["reload rspamd"]);
  });

  it("leaves filters the state does not want alone", async () => {
    const { sc, calls } = recordingSc(new Set());
    const filters = createFilterConfig({ paths, sc });
    const r = filters.reloader({ rspamd: false, clamd: false });
    await r.forward([paths.postfixMainCf, join(filters.rspamdPaths.confDir, "local.d", "actions.conf")]);
    expect(calls).toEqual([]);
    // Nothing wanted: verification has no milter to wait for.
    await filters.verify({ rspamd: false, clamd: false }, [paths.postfixMainCf], r.started());
  });
});
