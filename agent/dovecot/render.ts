// The whole Dovecot file set of one vnode: dovecot.conf, the sql connection file (0640, it
// names the DB holding password hashes) and the global before-script for Sieve.
import type { FileSet } from "../apply/file-spec.ts";
import type { DovecotRenderOptions } from "./render-options.ts";
import { renderDovecotConf } from "./render-conf.ts";
import { renderDovecotSql } from "./render-sql.ts";
import { renderSieveBefore } from "./sieve-before.ts";

export type { DovecotRenderOptions } from "./render-options.ts";

export function renderDovecot(o: DovecotRenderOptions): FileSet {
  const p = o.paths;
  return new Map([
    [p.dovecotConf, { content: renderDovecotConf(o), mode: 0o644 }],
    [p.dovecotSqlConf, { content: renderDovecotSql(p.lookupDb), mode: 0o640 }],
    [p.dovecotSieveBefore, { content: renderSieveBefore(), mode: 0o644 }],
  ]);
}
