// No loops between folders (issue 11): the folder-level import graph of controller/, agent/ and
// common/, read from the sources (static imports, re-exports, `import type` and dynamic import(),
// through test/helpers/module-graph.ts), has no cycle. A folder is a unit a reader finds by name;
// if two folders import each other, neither can be understood, moved or tested without the other,
// and what both need belongs a floor down. Each cycle is reported with the imports that close it.
// Broken here: controller/dkim ⇄ dns (the DKIM TXT record moved to dns/dkim-txt.ts, the DNS plan
// takes the keys from its caller), DnsZoneProvider moved from mail/mail-api.ts to dns/, the CLI's
// DNS wiring moved from cli/commands/dns/ to cli/dns-context.ts, fleet ⇄ health (the usage fetch
// moved to fleet/), pki → fleet (the TLS sweep names the one method of the deliver service it
// needs) and home ⇄ pki (init-home.ts moved to pki/, home/ keeps paths and config).
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { importsOf, sourceFiles } from "../helpers/module-graph.ts";

/**
 * Known loops, each a group of folders by name with the reason it stays for now. A cycle passes
 * when all of its folders lie in one group: breaking part of a group keeps passing, a loop that
 * reaches a folder outside it fails. Shrink these; never add to one without saying why.
 */
const ALLOWED: ReadonlyArray<{ folders: readonly string[]; why: string }> = [
  {
    folders: [
      "controller/cli",
      "controller/cli/commands",
      "controller/cli/commands/dns",
      "controller/cli/commands/mail",
    ],
    why:
      "one program in two layers: main.ts/program.ts register the commands, and the commands use the CLI's " +
      "context and formatting beside them (cli-context.ts, format.ts). Breaking it means moving those into a " +
      "folder of their own while issue 11's CLI rework (parse, call a service, print) is under way.",
  },
  {
    folders: [
      "agent",
      "agent/adopt",
      "agent/clamav",
      "agent/dovecot",
      "agent/health",
      "agent/info",
      "agent/mail",
      "agent/metrics",
      "agent/postfix",
      "agent/rspamd",
      "agent/sc",
      "agent/server",
      "agent/web",
    ],
    why:
      "agent/ holds both the composition root (agent-daemon.ts, which imports every subfolder) and the floor " +
      "helpers every subfolder uses (paths.ts, process.ts); and metrics/mail-metrics.ts reads the mail port of " +
      "server/ while server/ counts into metrics/. Issue 11's one process-helper module and one mail-host port " +
      "(agent/server) are being built now; they move those files and close these loops. adopt/ (the sysadm " +
      "inventory) and web/ (the served MTA-STS/autoconfig host) joined it the same way: they read paths.ts " +
      "from the root, which imports them; and the SNI map (mail/sni-files.ts, read by the dovecot/ and " +
      "postfix/ renderers) takes its names from web/cert-map.ts.",
  },
];
const allowed = (cycle: readonly string[]): boolean =>
  ALLOWED.some((group) => cycle.every((folder) => group.folders.includes(folder)));

type Graph = Map<string, Map<string, string>>;

/** folder → (imported folder → one import that makes the edge, for the report). */
function folderGraph(roots: readonly string[]): Graph {
  const graph: Graph = new Map();
  for (const file of sourceFiles(...roots)) {
    const from = dirname(file);
    if (!graph.has(from)) graph.set(from, new Map());
    for (const i of importsOf(file)) {
      if (i.file === undefined) continue;
      const to = dirname(i.file);
      if (to === from || !roots.some((r) => to === r || to.startsWith(`${r}/`))) continue;
      const edges = graph.get(from) ?? new Map<string, string>();
      if (!edges.has(to)) edges.set(to, `${i.from} → ${i.specifier}${i.dynamic ? " (dynamic)" : ""}`);
      graph.set(from, edges);
    }
  }
  return graph;
}

/** Strongly connected components with more than one folder (Tarjan). */
function cycles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.keys() ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
        onStack.delete(w);
        component.push(w);
        if (w === v) break;
      }
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

/** A cycle as the reader needs it: the folders, and the imports between them that close it. */
function describeCycle(graph: Graph, component: readonly string[]): string {
  const inside = new Set(component);
  const edges = component.flatMap((from) =>
    [...(graph.get(from) ?? new Map<string, string>())].filter(([to]) => inside.has(to)).map(([, why]) => `  ${why}`),
  );
  return [component.join(" ⇄ "), ...edges].join("\n");
}

describe("folder cycles", () => {
  it("controller/, agent/ and common/ have no import cycle between folders", () => {
    const graph = folderGraph(["controller", "agent", "common"]);
    const found = cycles(graph).filter((c) => !allowed(c));
    expect(found.map((c) => describeCycle(graph, c))).toEqual([]);
  });

  it("the checker finds a cycle when there is one", () => {
    const graph: Graph = new Map([
      ["a", new Map([["b", "a/x.ts → ../b/y.ts"]])],
      ["b", new Map([["c", "b/y.ts → ../c/z.ts"]])],
      ["c", new Map([["a", "c/z.ts → ../a/x.ts"]])],
      ["d", new Map([["a", "d/w.ts → ../a/x.ts"]])],
    ]);
    expect(cycles(graph)).toEqual([["a", "b", "c"]]);
    // An allowed group covers only its own folders.
    expect(allowed(["agent", "agent/server"])).toBe(true);
    expect(allowed(["agent/server", "controller/fleet"])).toBe(false);
    // The real graph is read: the agent's server imports its mail host, the CLI its commands.
    const real = folderGraph(["controller", "agent", "common"]);
    expect(real.get("agent/server")?.has("agent/mail")).toBe(true);
    expect(real.get("controller/cli")?.has("controller/cli/commands")).toBe(true);
  });
});
