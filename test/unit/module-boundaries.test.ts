// Controller and agent run on different machines and meet only in common/ and proto/: checked from
// the sources (static imports, `import type` and dynamic import()). The running agent's loaded
// modules are checked in test/integration/agent-modules.test.ts.
import { describe, expect, it } from "vitest";
import { CONTROLLER_ONLY_PACKAGES, importsOf, reachableFrom, sourceFiles, topFolder } from "../helpers/module-graph.ts";

function crossings(folder: string, forbidden: string[]): string[] {
  return sourceFiles(folder)
    .flatMap(importsOf)
    .filter((i) => i.file !== undefined && forbidden.includes(topFolder(i.file)))
    .map((i) => `${i.from} → ${i.specifier}${i.dynamic ? " (dynamic)" : ""}`);
}

describe("module boundaries", () => {
  it("nothing under agent/ imports controller/", () => {
    expect(crossings("agent", ["controller"])).toEqual([]);
  });

  it("nothing under controller/ imports agent/", () => {
    expect(crossings("controller", ["agent"])).toEqual([]);
  });

  it("common/ imports neither agent/ nor controller/", () => {
    expect(crossings("common", ["agent", "controller"])).toEqual([]);
  });

  it("the agent's bin reaches no controller module and no controller-only package", () => {
    const { files, packages } = reachableFrom("bin/netserva-mail-agent.js");
    // The graph is real: the daemon, the mail host and enrollment are all in it.
    expect(files).toContain("agent/agent-daemon.ts");
    expect(files).toContain("agent/mail/mail-host.ts");
    expect(files).toContain("agent/enroll/enroll.ts");
    expect([...files].filter((f) => !["bin", "agent", "common"].includes(topFolder(f)))).toEqual([]);
    expect([...packages].filter((p) => CONTROLLER_ONLY_PACKAGES.some((re) => re.test(p)))).toEqual([]);
  });

  it("the checker sees a crossing when there is one", () => {
    // The controller's bin dispatches `agent` to the agent's CLI: a bin may reach both.
    const { files } = reachableFrom("bin/netserva-mail.js");
    expect(files).toContain("agent/cli/main.ts");
    expect(files).toContain("controller/cli/main.ts");
  });
});
