// RFC 4180 CSV, both ways. Records end with CRLF or LF; a field is either plain (no '"', ',',
// CR or LF) or wholly enclosed in double quotes, with '""' for a quote inside. A leading UTF-8
// byte-order mark (spreadsheets write one) is skipped. Anything else is refused with the line
// where it went wrong: a quote in the middle of a plain field, text after a closing quote, a
// quoted field that never ends.
import { invalid } from "../../common/errors.ts";

export interface CsvRecord {
  /** Line of the file where the record starts (1-based). */
  line: number;
  fields: string[];
}

export function parseCsv(text: string, field = "csv"): CsvRecord[] {
  const records: CsvRecord[] = [];
  let i = text.startsWith("\uFEFF") ? 1 : 0;
  let line = 1;
  let fields: string[] = [];
  let start = line;
  let atRecordStart = true;
  while (i <= text.length) {
    if (atRecordStart) {
      start = line;
      atRecordStart = false;
    }
    let value = "";
    if (text[i] === '"') {
      const open = line;
      i++;
      for (;;) {
        if (i >= text.length) throw invalid(field, `line ${open}: a quoted field is never closed (a '"' is missing)`);
        const ch = text[i] as string;
        if (ch === '"') {
          if (text[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (ch === "\n") line++;
        value += ch;
        i++;
      }
      const next = text[i];
      if (next !== undefined && next !== "," && next !== "\n" && next !== "\r")
        throw invalid(
          field,
          `line ${line}: text after a closing quote; quote the whole field and write a quote inside as ""`,
        );
    } else {
      const from = i;
      while (i < text.length && text[i] !== "," && text[i] !== "\n" && text[i] !== "\r") {
        if (text[i] === '"')
          throw invalid(
            field,
            `line ${line}: a '"' inside an unquoted field; quote the whole field and write a quote inside as ""`,
          );
        i++;
      }
      value = text.slice(from, i);
    }
    fields.push(value);
    if (i >= text.length) {
      if (!(fields.length === 1 && fields[0] === "")) records.push({ line: start, fields });
      break;
    }
    if (text[i] === ",") {
      i++;
      continue;
    }
    // End of record: CRLF or LF (a lone CR is refused: it is not a line end in RFC 4180).
    if (text[i] === "\r") {
      if (text[i + 1] !== "\n") throw invalid(field, `line ${line}: a CR without LF; line ends are LF or CRLF`);
      i++;
    }
    i++;
    line++;
    if (!(fields.length === 1 && fields[0] === "")) records.push({ line: start, fields });
    fields = [];
    atRecordStart = true;
    if (i === text.length) break;
  }
  return records;
}

function cell(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One CSV text with CRLF line ends (RFC 4180); values are written as they are, never altered. */
export function writeCsv(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  return [header, ...rows].map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
}
