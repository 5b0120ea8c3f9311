// Terminal tables never carry a vnode's control characters: an escape sequence in an agent
// version or a health detail is shown as '?', not obeyed by the operator's terminal.
import { describe, expect, it } from "vitest";
import { formatRows } from "../../controller/cli/format.ts";
import { terminalLines, terminalText } from "../../controller/cli/terminal-text.ts";

const hostile = "1.0\u001b]0;pwned\u0007\u001b[2J\r\nfake row\u009b31m\u202eevil\u0000";

describe("terminal output", () => {
  it("a table cell from a vnode has no control characters left", () => {
    const table = formatRows([{ vnode: "mx1", agentVersion: hostile }], ["vnode", "agentVersion"], "table");
    for (const line of table.trimEnd().split("\n"))
      // eslint-disable-next-line no-control-regex
      expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(table.trimEnd().split("\n")).toHaveLength(2); // no row smuggled in by CR/LF
    expect(table).toContain("1.0?]0;pwned??[2J??fake row?31m?evil?");
  });

  it("JSON keeps the value exactly (escaped by JSON itself)", () => {
    const json = formatRows([{ agentVersion: hostile }], ["agentVersion"], "json");
    expect((JSON.parse(json) as Array<{ agentVersion: string }>)[0]?.agentVersion).toBe(hostile);
  });

  it("a block of lines keeps its line feeds only", () => {
    expect(terminalLines("a\u001b[1m\nb\r\n")).toBe("a?[1m\nb?\n");
    expect(terminalText("a\nb\tc")).toBe("a?b?c");
  });
});
