// Sums a test run into the one closing line CI reads: `N passed, N failed, N skipped`.
//
//   node scripts/summarize-results.ts --vitest-json FILE --vitest-exit CODE [--check NAME=pass|fail]...
//
// Each --check (generated code, type-check, lint) is one test case. From Vitest's JSON report:
// passed and failed tests; pending and todo tests as skipped; a test file that failed without a
// failed test in it (it did not load, or a hook threw) as one failure. A Vitest run that exited
// non-zero with no failure in its report (a crash, an unhandled error, no test files matched)
// counts one more failure, so a broken run can never read as green. Exits 1 iff failed > 0, 2 when
// it cannot summarise (bad arguments, unreadable report).
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { parseArgs } from "node:util";
import type { JsonTestResults } from "vitest/reporters";

interface Summary {
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
}

function summarizeChecks(checks: readonly string[], into: Summary): void {
  for (const check of checks) {
    const eq = check.lastIndexOf("=");
    const name = check.slice(0, eq);
    const result = check.slice(eq + 1);
    if (eq <= 0 || (result !== "pass" && result !== "fail")) {
      throw new Error(`--check expects NAME=pass|fail, got "${check}"`);
    }
    if (result === "pass") into.passed += 1;
    else {
      into.failed += 1;
      into.failures.push(`check: ${name}`);
    }
  }
}

function readReport(file: string): JsonTestResults | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  const report = JSON.parse(text) as JsonTestResults;
  if (typeof report.numPassedTests !== "number" || !Array.isArray(report.testResults)) {
    throw new Error(`${file} is not a Vitest JSON report`);
  }
  return report;
}

function summarizeVitest(file: string, exitCode: number, into: Summary): void {
  const report = readReport(file);
  if (report === undefined) {
    into.failed += 1;
    into.failures.push(`vitest: no report written (exit code ${exitCode})`);
    return;
  }
  into.passed += report.numPassedTests;
  into.failed += report.numFailedTests;
  into.skipped += report.numPendingTests + report.numTodoTests;
  let fileFailures = 0;
  for (const result of report.testResults) {
    const name = relative(process.cwd(), result.name);
    const failedTests = result.assertionResults.filter((a) => a.status === "failed");
    for (const test of failedTests) into.failures.push(`${name} > ${test.fullName}`);
    if (result.status === "failed" && failedTests.length === 0) {
      fileFailures += 1;
      const reason =
        result.message.split("\n").find((line) => line.trim() !== "") ?? "a hook or the file failed, see above";
      into.failures.push(`${name} (file failed: ${reason.trim()})`);
    }
  }
  into.failed += fileFailures;
  if (exitCode !== 0 && report.numFailedTests + fileFailures === 0) {
    into.failed += 1;
    into.failures.push(`vitest: exited ${exitCode} with no failed test in its report (see its output above)`);
  }
}

function main(): number {
  const { values } = parseArgs({
    options: {
      "vitest-json": { type: "string" },
      "vitest-exit": { type: "string", default: "0" },
      check: { type: "string", multiple: true, default: [] },
    },
    strict: true,
  });
  const summary: Summary = { passed: 0, failed: 0, skipped: 0, failures: [] };
  summarizeChecks(values.check, summary);
  if (values["vitest-json"] !== undefined) {
    summarizeVitest(values["vitest-json"], Number(values["vitest-exit"]), summary);
  }
  if (summary.failures.length > 0) {
    console.log("\nFailed:");
    for (const failure of summary.failures) console.log(`  ${failure}`);
  }
  console.log(`\n${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped`);
  return summary.failed > 0 ? 1 : 0;
}

try {
  process.exitCode = main();
} catch (error) {
  console.error("summarize-results:", error);
  process.exitCode = 2;
}
