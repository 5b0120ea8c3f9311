// The CLI registers commands by name and loads a command's module only when it runs: the name
// table must list every top-level command its modules define, and a name must load its command.
import { describe, expect, it } from "vitest";
import { createCliContext } from "../../controller/cli/cli-context.ts";
import { COMMANDS, buildProgram } from "../../controller/cli/program.ts";

const ctx = createCliContext({
  out: () => undefined,
  err: () => undefined,
  readStdin: async () => "",
  env: {},
  isTTY: false,
});

describe("lazy command table", () => {
  it("names exactly the top-level commands the modules define", async () => {
    const all = (await buildProgram(ctx)).commands.map((c) => c.name()).sort();
    expect(COMMANDS.flatMap(([names]) => names).sort()).toEqual(all);
  });

  it("a name builds a program with that command and only the commands of its module", async () => {
    for (const [names] of COMMANDS) {
      for (const name of names) {
        const defined = (await buildProgram(ctx, name)).commands.map((c) => c.name());
        expect(defined, name).toContain(name);
        expect([...defined].sort(), name).toEqual([...names].sort());
      }
    }
  });
});
