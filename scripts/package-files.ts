// Part of scripts/package: which files a package needs to run its entry point. Walks the module
// graph from the entry (static imports, re-exports and string-literal dynamic imports) through the
// repository's own .ts/.js files, then adds every npm package they name with its runtime
// dependencies (dependencies, optionalDependencies and installed peerDependencies), resolved the
// way Node does. So the agent's package carries exactly what the agent's process can load: when
// the graph reaches controller/ or a database library, the list shows it.
//
//   node scripts/package-files.ts ENTRY...   → one repository-relative path per line
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "..");
// The fourth form is a module a worker thread loads: new URL("./thread.ts", import.meta.url).
const IMPORT =
  /(?:^|[\s;}])(?:import|export)\s[^"'`;]*?\sfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']\s*\)|^\s*import\s+["']([^"']+)["']|\bnew\s+URL\(\s*["'](\.[^"']+\.[jt]s)["']\s*,\s*import\.meta\.url\s*\)/gm;

function resolveSource(from: string, specifier: string): string {
  const base = resolve(dirname(from), specifier);
  for (const candidate of [base, `${base}.ts`, `${base}.js`, join(base, "index.ts"), join(base, "index.js")]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  throw new Error(`${relative(repo, from)}: cannot resolve ${specifier}`);
}

/** "@scope/name/sub" → "@scope/name"; "name/sub" → "name"; node: built-ins → undefined. */
function packageName(specifier: string): string | undefined {
  if (specifier.startsWith("node:")) return undefined;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

function sourceClosure(entries: readonly string[]): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = entries.map((e) => resolve(repo, e));
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(IMPORT)) {
      const specifier = m[1] ?? m[2] ?? m[3] ?? m[4];
      if (!specifier) continue;
      if (specifier.startsWith(".")) queue.push(resolveSource(file, specifier));
      else {
        const name = packageName(specifier);
        if (name) packages.add(name);
      }
    }
  }
  return { files, packages };
}

/** The directory Node would load `name` from when required by code in `fromDir`. */
function resolvePackageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === repo || dir === dirname(dir)) return undefined;
  }
}

function packageClosure(roots: Iterable<string>): Set<string> {
  const dirs = new Set<string>();
  const queue = [...roots].map((name) => ({ name, from: repo, optional: false }));
  for (let item = queue.pop(); item !== undefined; item = queue.pop()) {
    const dir = resolvePackageDir(item.name, item.from);
    if (!dir) {
      if (item.optional) continue;
      throw new Error(`package ${item.name} (needed from ${relative(repo, item.from) || "."}) is not installed`);
    }
    if (dirs.has(dir)) continue;
    dirs.add(dir);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<
      string,
      Record<string, string> | undefined
    >;
    for (const [field, optional] of [
      ["dependencies", false],
      ["optionalDependencies", true],
      ["peerDependencies", true],
    ] as const) {
      for (const name of Object.keys(manifest[field] ?? {})) {
        // Type declarations are for the compiler; nothing loads them at run time.
        if (!name.startsWith("@types/")) queue.push({ name, from: dir, optional });
      }
    }
  }
  return dirs;
}

const entries = process.argv.slice(2);
if (entries.length === 0) {
  console.error("usage: package-files ENTRY...");
  process.exit(2);
}
const { files, packages } = sourceClosure(entries);
const out = [...files, ...packageClosure(packages)].map((p) => relative(repo, p)).sort();
process.stdout.write(`${out.join("\n")}\n`);
