#!/usr/bin/env node
// The agent on a vnode: `netserva-mail-agent enroll|serve`. Loads the agent's modules only.
import { cacheCompiledModules, ensurePinnedNode, quietSqliteNotice, tuneAgentProcess } from "./launch.js";

ensurePinnedNode(import.meta.url);
// The daemon only: enroll and the other one-shot commands run as they are.
if (process.argv[2] === "serve") tuneAgentProcess(import.meta.url);
cacheCompiledModules();
quietSqliteNotice();

const { runAgentCli } = await import("../agent/cli/main.ts");
process.exitCode = await runAgentCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
