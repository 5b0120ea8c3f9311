#!/usr/bin/env node
// The agent on a vnode: `netserva-mail-agent enroll|serve`. Loads the agent's modules only.
import { cacheCompiledModules, ensurePinnedNode, quietSqliteNotice } from "./launch.js";

ensurePinnedNode(import.meta.url);
cacheCompiledModules();
quietSqliteNotice();

const { runAgentCli } = await import("../agent/cli/main.ts");
process.exitCode = await runAgentCli(process.argv.slice(2), {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
});
