// The project's import graph read from the sources with the TypeScript parser: static imports and
// re-exports, `import type`, and dynamic `import()` (whose specifier must be a string literal, or
// the graph could not be checked).
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";

export const REPO = resolve(import.meta.dirname, "..", "..");

/** Packages the agent must never load: the controller's database and command-line stack. */
export const CONTROLLER_ONLY_PACKAGES = [/^@mikro-orm\//, /^@electric-sql\/pglite/, /^commander$/, /^pg$/];

export interface ModuleImport {
  /** The importing file, relative to the repository. */
  readonly from: string;
  readonly specifier: string;
  /** A repository file (relative path) for relative specifiers; undefined for packages and node: builtins. */
  readonly file: string | undefined;
  readonly dynamic: boolean;
}

/** Every .ts/.js source file under these repository folders (generated code included). */
export function sourceFiles(...folders: string[]): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(REPO, dir))) {
      const path = join(dir, name);
      if (statSync(join(REPO, path)).isDirectory()) walk(path);
      else if (/\.(ts|js|mjs)$/.test(name) && !name.endsWith(".d.ts")) files.push(path);
    }
  };
  for (const folder of folders) walk(folder);
  return files.sort();
}

/** The imports of one file; throws on a dynamic import whose specifier is not a literal. */
export function importsOf(file: string): ModuleImport[] {
  const text = readFileSync(join(REPO, file), "utf8");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: ModuleImport[] = [];
  const add = (specifier: string, dynamic: boolean): void => {
    const local = specifier.startsWith(".") ? relative(REPO, resolve(REPO, dirname(file), specifier)) : undefined;
    found.push({ from: file, specifier, file: local, dynamic });
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
      if (ts.isStringLiteral(node.moduleSpecifier)) add(node.moduleSpecifier.text, false);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments;
      if (!argument || !ts.isStringLiteralLike(argument)) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart());
        throw new Error(`${file}:${line + 1}: import() of a computed specifier cannot be checked`);
      }
      add(argument.text, true);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const literal = node.argument.literal;
      if (ts.isStringLiteral(literal)) add(literal.text, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The top folder of a repository path ("agent", "controller", "common", "bin", …). */
export function topFolder(file: string): string {
  return file.split("/")[0] ?? "";
}

/** Every repository file and package reachable from an entry file through its imports. */
export function reachableFrom(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [entry];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    for (const imported of importsOf(file)) {
      if (imported.file !== undefined) queue.push(imported.file);
      else packages.add(imported.specifier);
    }
  }
  return { files, packages };
}
