#!/usr/bin/env node
// Launcher: the project runs on the Node 24 from its `node` devDependency. When started by an
// older Node (the machine's), re-run the same command with the pinned one.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  const pinned = join(here, "..", "node_modules", "node", "bin", "node");
  if (!existsSync(pinned)) {
    process.stderr.write("netserva-mail needs Node >= 24: run `npm ci` in the project first\n");
    process.exit(2);
  }
  const result = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
    argv0: process.argv[1],
  });
  process.exit(result.status ?? 1);
}

// node:sqlite (the vnode's lookup store) is stable enough for us; its experimental notice would
// only clutter operator output.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  if (String(warning).includes("SQLite is an experimental feature")) return;
  emitWarning(warning, ...rest);
};

// A reader that stops early (`shvmail mx1 --json | head -1`) closes the pipe: like a Unix tool,
// stop writing there and say nothing; the command itself still finishes and sets the exit code.
const closed = { out: false, err: false };
process.stdout.on("error", () => void (closed.out = true));
process.stderr.on("error", () => void (closed.err = true));

const { main } = await import("../controller/cli/main.ts");
let stdinText;
const code = await main(process.argv[1] ?? "netserva-mail", process.argv.slice(2), {
  out: (text) => void (closed.out || process.stdout.write(text)),
  err: (text) => void (closed.err || process.stderr.write(text)),
  readStdin: async () => {
    if (stdinText !== undefined) return stdinText;
    if (process.stdin.isTTY) return (stdinText = "");
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return (stdinText = Buffer.concat(chunks).toString("utf8"));
  },
  env: process.env,
  isTTY: Boolean(process.stdout.isTTY),
  // Destructive commands ask on a terminal; without one they need --yes.
  confirm: process.stdin.isTTY
    ? async (question) => {
        const { createInterface } = await import("node:readline/promises");
        const rl = createInterface({ input: process.stdin, output: process.stderr });
        const answer = await rl.question(question);
        rl.close();
        return /^y(es)?$/i.test(answer.trim());
      }
    : undefined,
});
process.exitCode = code;
