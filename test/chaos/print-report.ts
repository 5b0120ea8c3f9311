// Prints the JSON lines written by recordChaos() as one table (scripts/chaos).
import { readFileSync } from "node:fs";
import type { ChaosOutcome } from "./report.ts";

const file = process.argv[2];
if (!file) throw new Error("usage: print-report.ts REPORT.jsonl");
let text = "";
try {
  text = readFileSync(file, "utf8");
} catch {
  text = "";
}
const rows = text
  .split("\n")
  .filter((l) => l.trim() !== "")
  .map((l) => JSON.parse(l) as ChaosOutcome);

const header = [
  "fault",
  "where",
  "times",
  "config after",
  "mail accepted",
  "converged",
  "s to converge",
  "lost",
  "dup",
  "note",
];
const cells = rows.map((r) => [
  r.fault,
  r.where,
  String(r.times),
  r.config,
  r.mailAccepted ? "yes" : "NO",
  r.converged ? "yes" : "NO",
  r.secondsToConverge === undefined ? "-" : r.secondsToConverge.toFixed(1),
  String(r.lost),
  String(r.duplicated),
  r.note ?? "",
]);
const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
const line = (c: readonly string[]): string => `| ${c.map((v, i) => v.padEnd(widths[i] ?? 0)).join(" | ")} |`;
console.log(line(header));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const c of cells) console.log(line(c));
const injected = rows.reduce((n, r) => n + r.times, 0);
const bad = rows.filter((r) => !r.mailAccepted || !r.converged || r.lost > 0).length;
console.log(`\n${rows.length} rows, ${injected} faults injected, ${bad} rows with lost mail or no convergence`);
