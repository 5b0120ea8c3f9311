// The whole Postfix file set of one vnode: main.cf, master.cf and the sqlite maps. (The meta
// files a private root needs are the package's own, installed by meta-files.ts.)
import type { FileSet } from "../apply/file-spec.ts";
import type { PostfixRenderOptions } from "./render-options.ts";
import { renderMainCf } from "./render-main-cf.ts";
import { renderMasterCf } from "./render-master-cf.ts";
import { MAP_NAMES, renderMap } from "./render-maps.ts";
import { join } from "node:path";
import { renderPostfixSniMap } from "../mail/sni-files.ts";

export type { PostfixRenderOptions } from "./render-options.ts";

const SQLITE_DYNAMICMAP = "sqlite\tpostfix-sqlite.so\tdict_sqlite_open";

export function renderPostfix(o: PostfixRenderOptions): FileSet {
  const p = o.paths;
  const files: FileSet = new Map();
  files.set(p.postfixMainCf, { content: renderMainCf(o), mode: 0o644 });
  files.set(p.postfixMasterCf, { content: renderMasterCf(), mode: 0o644 });
  // Map files hold only the DB path and the queries: nothing secret.
  for (const name of MAP_NAMES) files.set(p.postfixMap(name), { content: renderMap(name, p.lookupDb), mode: 0o644 });
  // Always written (empty without SNI), so a table that was named once never dangles.
  files.set(join(p.postfixDir, "sni"), { content: renderPostfixSniMap(o.sni ?? []), mode: 0o644 });
  return files;
}

/** The host's dynamicmaps.cf with the sqlite line guaranteed (a private root cannot load the map type without it). */
export function renderDynamicMaps(host: string | undefined): string {
  const base = host ?? "# dict-type\tso-name (pathname)\tdict-function\tmkmap-function\n";
  if (/^sqlite\s/m.test(base)) return base;
  return `${base.endsWith("\n") ? base : `${base}\n`}${SQLITE_DYNAMICMAP}\n`;
}
