// SNI on the mail ports: the named certificates of the desired state (the same map the HTTPS
// listener uses, agent/web/cert-map.ts) written as files the daemons read, and the entries their
// configs name. Postfix reads one key-and-chain file per certificate through tls_server_sni_maps
// (a texthash table: read whole when each smtpd starts, so a reload switches all at once);
// Dovecot gets a `local_name` block per exact name with the certificate and key files. A name
// no entry covers gets the vnode's mail certificate. Files are named by a digest of the names,
// so reordering the list rewrites nothing.
import { createHash } from "node:crypto";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { FileSet } from "../apply/file-spec.ts";
import type { VnodePaths } from "../paths.ts";
import { certMapOf } from "../web/cert-map.ts";

export interface SniEntry {
  /** Lowercase A-labels; "*.parent" for a wildcard (Postfix only: Dovecot matches exact names). */
  readonly names: readonly string[];
  /** Key then chain, one file (Postfix). */
  readonly keyAndChain: string;
  readonly cert: string;
  readonly key: string;
}

export function renderSniFiles(paths: VnodePaths, state: DesiredState): { files: FileSet; entries: SniEntry[] } {
  const files: FileSet = new Map();
  const entries: SniEntry[] = [];
  const seen = new Set<string>();
  const pem = (text: string): string => `${text.trimEnd()}\n`;
  for (const pair of certMapOf(state).named) {
    // A name listed by two entries is served by the first, as on the HTTPS listener.
    const names = pair.names.filter((n) => !seen.has(n));
    names.forEach((n) => seen.add(n));
    if (names.length === 0) continue;
    const id = createHash("sha256").update(names.join(" ")).digest("hex").slice(0, 16);
    const base = join(paths.tlsDir, `sni-${id}`);
    const entry: SniEntry = { names, keyAndChain: `${base}.pem`, cert: `${base}.crt`, key: `${base}.key` };
    files.set(entry.keyAndChain, { content: pem(pair.keyPem) + pem(pair.chainPem), mode: 0o600 });
    files.set(entry.cert, { content: pem(pair.chainPem), mode: 0o644 });
    files.set(entry.key, { content: pem(pair.keyPem), mode: 0o600 });
    entries.push(entry);
  }
  return { files, entries };
}

/** Postfix's SNI table: the name (a wildcard as ".parent") and the key-and-chain file. */
export function renderPostfixSniMap(entries: readonly SniEntry[]): string {
  const lines = entries.flatMap((e) => e.names.map((n) => `${n.startsWith("*.") ? n.slice(1) : n} ${e.keyAndChain}`));
  return `# Rendered by netserva-mail; edits are overwritten.\n${lines.join("\n")}\n`;
}

/** Removes SNI files of certificates the applied state no longer has (`keep`: the files it wrote). */
export function removeStaleSniFiles(paths: VnodePaths, keep: ReadonlySet<string>): string[] {
  let names: string[];
  try {
    names = readdirSync(paths.tlsDir);
  } catch {
    return [];
  }
  const stale = names
    .filter((n) => /^sni-[0-9a-f]{16}\.(pem|crt|key)$/.test(n))
    .map((n) => join(paths.tlsDir, n))
    .filter((f) => !keep.has(f));
  for (const f of stale) rmSync(f, { force: true });
  return stale;
}
