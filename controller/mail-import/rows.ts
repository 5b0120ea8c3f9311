// The rows of a bulk import, read from CSV or JSON into one shape. Every row has a kind
// (domain, mailbox or alias) and the fields that kind takes; field names are the same in CSV
// headers and JSON keys (and match the JSON views of the listings). Here only the structure is
// checked — a known kind, known fields, the right types, a vnode to put it on; what the values
// mean (a valid address, a quota within limits) is checked by the services as the row is stored.
import { invalid } from "../../common/errors.ts";
import type { NetservaError } from "../../common/errors.ts";
import { parseCsv } from "./csv.ts";

export const ROW_KINDS = ["domain", "mailbox", "alias"] as const;
export type RowKind = (typeof ROW_KINDS)[number];

/** Every column of the CSV form, in the order export writes them. */
export const IMPORT_COLUMNS = [
  "kind",
  "vnode",
  "domain",
  "address",
  "source",
  "targets",
  "name",
  "active",
  "quota",
  "defaultQuota",
  "maxMailboxes",
  "maxAliases",
  "maxQuota",
  "overcommit",
  "passwordHash",
  "sieve",
] as const;
export type ImportColumn = (typeof IMPORT_COLUMNS)[number];

/** The fields each kind takes; any other non-empty field on such a row is refused. */
export const KIND_FIELDS: Readonly<Record<RowKind, readonly ImportColumn[]>> = {
  domain: ["kind", "vnode", "domain", "active", "defaultQuota", "maxMailboxes", "maxAliases", "maxQuota", "overcommit"],
  mailbox: ["kind", "vnode", "address", "name", "active", "quota", "passwordHash", "sieve"],
  alias: ["kind", "vnode", "source", "targets", "active"],
};

/** A row as read: values are strings (CSV) or JSON scalars/arrays; absent fields are missing. */
export interface RawRow {
  /** CSV: the line the record starts on; JSON: the 1-based index in `rows`. */
  row: number;
  values: Partial<Record<ImportColumn, unknown>>;
}

/** A row refused before or while it was stored. */
export interface Refusal {
  row: number;
  field: string;
  reason: string;
}

/** A row that could not be read at all carries its refusal with it. */
export type ReadRow = RawRow & { error?: { field: string; reason: string } };

export interface ParsedFile {
  rows: ReadRow[];
  /** The vnode named at the top of a JSON export (rows without one go there). */
  vnode?: string;
}

const MAX_FILE_ROWS = 1_000_000;

/** Refuses the whole file (nothing can be imported from it): exit 1, naming where. */
function fileError(field: string, message: string): NetservaError {
  return invalid(field, message);
}

export function readCsvRows(text: string): ParsedFile {
  const records = parseCsv(text, "csv");
  const header = records.shift();
  if (!header)
    throw fileError("csv", "the file is empty; the first line must be the header (kind,vnode,domain,address,…)");
  const columns = header.fields.map((name, i) => {
    if (!(IMPORT_COLUMNS as readonly string[]).includes(name)) {
      throw fileError(
        "csv",
        `header column ${i + 1} ${JSON.stringify(name.slice(0, 40))} is not one of ${IMPORT_COLUMNS.join(", ")}`,
      );
    }
    return name as ImportColumn;
  });
  if (new Set(columns).size !== columns.length) throw fileError("csv", "the header names a column twice");
  if (!columns.includes("kind")) throw fileError("csv", "the header has no 'kind' column");
  if (records.length > MAX_FILE_ROWS)
    throw fileError("csv", `${records.length} rows; import at most ${MAX_FILE_ROWS} at a time`);
  return {
    rows: records.map((record): ReadRow => {
      const values: Partial<Record<ImportColumn, unknown>> = {};
      columns.forEach((column, i) => {
        const value = record.fields[i];
        // An empty CSV cell means "not given" (the default applies).
        if (value !== undefined && value !== "") values[column] = value;
      });
      if (record.fields.length !== columns.length) {
        values.kind ??= "";
        return {
          row: record.line,
          values,
          error: { field: "csv", reason: `has ${record.fields.length} fields; the header has ${columns.length}` },
        };
      }
      return { row: record.line, values };
    }),
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function readJsonRows(text: string): ParsedFile {
  let doc: unknown;
  try {
    doc = JSON.parse(text.startsWith("\uFEFF") ? text.slice(1) : text);
  } catch (error) {
    throw fileError("json", `the file is not JSON: ${(error as Error).message.slice(0, 200)}`);
  }
  let list: unknown;
  let vnode: string | undefined;
  if (Array.isArray(doc)) list = doc;
  else if (isObject(doc)) {
    for (const key of Object.keys(doc)) {
      if (!["version", "vnode", "exportedAt", "rows"].includes(key))
        throw fileError(
          key.slice(0, 40),
          `unknown top-level key; the file is {"version": 1, "vnode": …, "rows": […]} or a list of rows`,
        );
    }
    if (doc["version"] !== undefined && doc["version"] !== 1)
      throw fileError(
        "version",
        `version ${JSON.stringify(doc["version"])} is not supported (this import reads version 1)`,
      );
    if (doc["vnode"] !== undefined && typeof doc["vnode"] !== "string") throw fileError("vnode", "must be a string");
    vnode = doc["vnode"] as string | undefined;
    list = doc["rows"];
  } else throw fileError("json", 'the file must be a list of rows or {"version": 1, "rows": […]}');
  if (!Array.isArray(list)) throw fileError("rows", "must be a list of rows");
  if (list.length > MAX_FILE_ROWS)
    throw fileError("rows", `${list.length} rows; import at most ${MAX_FILE_ROWS} at a time`);
  const rows = list.map((item: unknown, index): ReadRow => {
    const row = index + 1;
    if (!isObject(item)) return { row, values: {}, error: { field: "row", reason: "is not an object" } };
    const values: Partial<Record<ImportColumn, unknown>> = {};
    for (const [key, value] of Object.entries(item)) {
      if (!(IMPORT_COLUMNS as readonly string[]).includes(key)) {
        const hint =
          key === "password"
            ? "; clear-text passwords are not imported: give passwordHash ({SHA512-CRYPT}…) or leave it out to generate one"
            : "";
        return {
          row,
          values: {},
          error: { field: key.slice(0, 40), reason: `is not a field of an import row${hint}` },
        };
      }
      if (value !== null) values[key as ImportColumn] = value;
    }
    return { row, values };
  });
  return vnode === undefined ? { rows } : { rows, vnode };
}

export function readImportFile(text: string, format: "csv" | "json"): ParsedFile {
  return format === "csv" ? readCsvRows(text) : readJsonRows(text);
}
