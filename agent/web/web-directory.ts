// The alternative for a vnode where a web server already owns 443: the same answers written as
// files into a directory that web server serves, one subdirectory per virtual host name
// (`<dir>/mta-sts.<domain>/.well-known/mta-sts.txt`, `<dir>/autoconfig.<domain>/mail/config-v1.1.xml`,
// `<dir>/autodiscover.<domain>/autodiscover/autodiscover.xml`), so a `root <dir>/$host` serves them.
// Autodiscover's answer there is static (no LoginName: a static file cannot echo the address).
// Each file is written atomically; host directories of domains no longer served are removed.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { commitAside, writeAside } from "../apply/atomic-write.ts";
import { autoconfigXml, autodiscoverXml } from "./client-config.ts";
import { AUTOCONFIG_PATHS, AUTODISCOVER_PATHS, MTA_STS_PATH, type Site } from "./served-site.ts";

/** Lists the host directories written last time, so a later write removes only its own. */
const MANIFEST = ".netserva-mail-hosts";

export function siteFiles(site: Site): Map<string, string> {
  const files = new Map<string, string>();
  for (const d of site.domains.values()) {
    if (d.mtaStsPolicy !== "") files.set(join(`mta-sts.${d.domain}`, MTA_STS_PATH), d.mtaStsPolicy);
    const config = autoconfigXml(d.domain, d.mailHost);
    files.set(join(`autoconfig.${d.domain}`, AUTOCONFIG_PATHS[0] ?? ""), config);
    files.set(join(d.domain, AUTOCONFIG_PATHS[1] ?? ""), config);
    files.set(join(`autodiscover.${d.domain}`, AUTODISCOVER_PATHS[0] ?? ""), autodiscoverXml(d.mailHost, undefined));
  }
  return files;
}

export function writeSiteDirectory(dir: string, site: Site): number {
  const files = siteFiles(site);
  const hosts = new Set([...files.keys()].map((f) => f.split("/")[0] ?? ""));
  let before: string[] = [];
  try {
    before = readFileSync(join(dir, MANIFEST), "utf8").split("\n").filter(Boolean);
  } catch {
    before = [];
  }
  for (const [rel, content] of files) {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    commitAside(writeAside(path, { content, mode: 0o644 }), path);
  }
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const manifest = join(dir, MANIFEST);
  commitAside(writeAside(manifest, { content: [...hosts].sort().join("\n") + "\n", mode: 0o644 }), manifest);
  for (const host of before)
    if (!hosts.has(host) && /^[a-z0-9.-]+$/.test(host)) rmSync(join(dir, host), { recursive: true, force: true });
  return files.size;
}
