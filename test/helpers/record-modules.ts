// `node --import <this file>?out=FILE …`: appends the URL of every module the process resolves
// (ES imports and require() alike) to FILE, one per line. No inspector, no change to the program.
import { appendFileSync } from "node:fs";
import { registerHooks } from "node:module";

const out = new URL(import.meta.url).searchParams.get("out");
if (!out) throw new Error("record-modules: give the output file as ?out=FILE on the --import URL");

registerHooks({
  resolve(specifier, context, nextResolve) {
    const resolved = nextResolve(specifier, context);
    appendFileSync(out, resolved.url + "\n");
    return resolved;
  },
});
