#!/usr/bin/env node
// The controller's command line and NetServa's command names (addvmail, …). `netserva-mail agent …`
// is a spelling of `netserva-mail-agent …`: it dispatches before any controller module loads.
import { cacheCompiledModules, ensurePinnedNode, quietSqliteNotice, tuneAgentProcess } from "./launch.js";

ensurePinnedNode(import.meta.url);
if (process.argv[2] === "agent" && process.argv[3] === "serve") tuneAgentProcess(import.meta.url);
cacheCompiledModules();
quietSqliteNotice();

// A reader that stops early (`shvmail mx1 --json | head -1`) closes the pipe: like a Unix tool,
// stop writing there and say nothing; the command itself still finishes and sets the exit code.
const closed = { out: false, err: false };
process.stdout.on("error", () => void (closed.out = true));
process.stderr.on("error", () => void (closed.err = true));
const out = (text) => void (closed.out || process.stdout.write(text));
const err = (text) => void (closed.err || process.stderr.write(text));

if (process.argv[2] === "agent") {
  const { runAgentCli } = await import("../agent/cli/main.ts");
  process.exitCode = await runAgentCli(process.argv.slice(3), {
    out,
    err,
  });
} else {
  const { main } = await import("../controller/cli/main.ts");
  let stdinText;
  const code = await main(process.argv[1] ?? "netserva-mail", process.argv.slice(2), {
    out,
    err,
    readStdin: async () => {
      if (stdinText !== undefined) return stdinText;
      if (process.stdin.isTTY) return (stdinText = "");
      const chunks = [];
      for await (const chunk of process.stdin) chunks.push(chunk);
      return (stdinText = Buffer.concat(chunks).toString("utf8"));
    },
    env: process.env,
    cwd: process.cwd(),
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
}
