// The shipped alert rules pass `promtool check rules` and their unit tests (`promtool test rules`
// with input series), and the Grafana dashboard is valid JSON with a datasource variable.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const MONITORING = join(import.meta.dirname, "..", "..", "agent", "metrics", "monitoring");

function promtool(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile("/usr/bin/promtool", args, { cwd: MONITORING }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

describe("alert rules and dashboard", () => {
  it("pass promtool check rules", async () => {
    const r = await promtool(["check", "rules", "alert-rules.yml"]);
    expect(r.output).toContain("SUCCESS: 18 rules found");
    expect(r.code).toBe(0);
  });

  it("pass promtool test rules", async () => {
    const r = await promtool(["test", "rules", "alert-rules.test.yml"]);
    expect(r.output).toContain("SUCCESS");
    expect(r.code).toBe(0);
  });

  it("cover every alert the issue asks for", () => {
    const rules = readFileSync(join(MONITORING, "alert-rules.yml"), "utf8");
    for (const name of [
      "NetservaVnodeDown",
      "NetservaPostfixQueueGrowing",
      "NetservaPostfixDeferredOld",
      "NetservaAgentCertificateExpiring",
      "NetservaMailTlsCertificateExpiring",
      "NetservaMailDiskNearlyFull",
      "NetservaMailboxesNearlyFull",
      "NetservaAgentDrift",
      "NetservaGenerationLag",
      "NetservaMailDaemonRestarting",
      "NetservaFilesystemFull",
      "NetservaAcmeRenewalFailing",
      "NetservaAcmeCertificateExpiring",
    ]) {
      expect(rules).toContain(`alert: ${name}`);
    }
  });

  it("ship a dashboard that parses, with a datasource variable used by every panel", () => {
    const d = JSON.parse(readFileSync(join(MONITORING, "grafana-dashboard.json"), "utf8")) as {
      uid: string;
      templating: { list: Array<{ name: string; type: string }> };
      panels: Array<{ datasource: { uid: string }; targets: Array<{ expr: string }> }>;
    };
    expect(d.uid).toBe("netserva-mail");
    expect(d.templating.list.some((t) => t.type === "datasource" && t.name === "datasource")).toBe(true);
    for (const p of d.panels) {
      expect(p.datasource.uid).toBe("${datasource}");
      for (const t of p.targets) expect(t.expr).toMatch(/\b(netserva_[a-z0-9_]+|up)\b/);
    }
  });
});
