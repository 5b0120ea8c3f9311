// Listings as table (people), json (scripts; stable field names) or csv (spreadsheets).
import { invalid } from "../../common/errors.ts";
import { terminalText } from "./terminal-text.ts";

export type OutputFormat = "table" | "json" | "csv";

export function parseFormat(value: string | undefined, json?: boolean): OutputFormat {
  if (json) return "json";
  const format = value ?? "table";
  if (format !== "table" && format !== "json" && format !== "csv")
    throw invalid("format", `'${format}' is not one of table, json, csv`);
  return format;
}

type Cell = string | number | boolean | null | undefined;

function text(value: Cell): string {
  return value === null || value === undefined ? "-" : terminalText(String(value));
}

function csvCell(value: Cell): string {
  const raw = value === null || value === undefined ? "" : String(value);
  // Quote always when needed; neutralise spreadsheet formulas.
  const safe = /^[=+\-@]/.test(raw) ? `'${raw}` : raw;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function formatRows<T extends object>(
  rows: T[],
  columns: Array<keyof T & string>,
  format: OutputFormat,
): string {
  if (format === "json") return JSON.stringify(rows, null, 2) + "\n";
  const cells = rows.map((row) => columns.map((c) => (row as Record<string, Cell>)[c]));
  if (format === "csv") return [columns.join(","), ...cells.map((r) => r.map(csvCell).join(","))].join("\n") + "\n";
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => text(r[i]).length)));
  const line = (values: string[]): string =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map((r) => line(r.map(text)))].join("\n") + "\n";
}
