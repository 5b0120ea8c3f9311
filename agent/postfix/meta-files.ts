// What a private Postfix root borrows from the host's installation: the meta files
// (postfix-files lists what `postfix check/start` creates; dynamicmaps.cf loads the sqlite map
// type) and the installation parameters. `postfix start` runs post-install, which rewrites
// main.cf whenever those parameters differ from the installed ones, so main.cf carries them
// verbatim and a second apply finds nothing changed.
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { writeFileAtomic, isCurrent } from "../apply/atomic-write.ts";
import type { VnodePaths } from "../paths.ts";
import { runChecked, type RunOptions } from "../process.ts";
import { renderDynamicMaps } from "./render.ts";

export const INSTALL_PARAMS = [
  "command_directory",
  "daemon_directory",
  "html_directory",
  "mailq_path",
  "manpage_directory",
  "newaliases_path",
  "readme_directory",
  "sample_directory",
  "sendmail_path",
  "shlib_directory",
] as const;

export function readPostfixMetaFiles(hostDir = "/etc/postfix"): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of ["postfix-files", "dynamicmaps.cf"]) {
    const path = join(hostDir, name);
    if (existsSync(path)) files.set(name, readFileSync(path, "utf8"));
  }
  for (const sub of ["postfix-files.d", "dynamicmaps.cf.d"]) {
    const dir = join(hostDir, sub);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) files.set(`${sub}/${f}`, readFileSync(join(dir, f), "utf8"));
  }
  return files;
}

/** The compiled-in installation parameters (`postconf -d -h`), in INSTALL_PARAMS order. */
export async function readPostfixInstallParams(run: RunOptions = {}): Promise<Array<[string, string]>> {
  const r = await runChecked("postconf", ["-d", "-h", ...INSTALL_PARAMS], run);
  const values = r.stdout.trim().split("\n");
  return INSTALL_PARAMS.map((name, i) => [name, values[i] ?? ""]);
}

/**
 * Copy the meta files into a private root's config dir. They are the package's own files, not
 * rendered config, so they go in directly (atomically) before any staged validation needs them.
 */
export function installPostfixMetaFiles(paths: VnodePaths, meta: ReadonlyMap<string, string>): void {
  if (paths.isSystemRoot) return;
  const files = new Map(meta);
  files.set("dynamicmaps.cf", renderDynamicMaps(meta.get("dynamicmaps.cf")));
  for (const [rel, content] of files) {
    const path = join(paths.postfixDir, rel);
    const spec = { content, mode: 0o644 };
    if (isCurrent(path, spec)) continue;
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileAtomic(path, spec);
  }
}
