import type { SniEntry } from "../mail/sni-files.ts";
// Inputs of the Dovecot renderers: the vnode's paths and settings plus explicit options.
import type { VnodePaths } from "../paths.ts";

export interface DovecotRenderOptions {
  readonly paths: VnodePaths;
  readonly mailHostname: string;
  /** Addresses the login services bind; empty = all. */
  readonly listenAddresses: readonly string[];
  /** uid/gid that owns all mail (the vmail user): Dovecot's first_valid_uid/gid. */
  readonly vmailUid: number;
  /** Certificates by SNI name (mail/sni-files.ts): a local_name block per exact name. */
  readonly sni?: readonly SniEntry[];
  readonly vmailGid: number;
  /** Dovecot's ~4 s delay after a failed login; tests may turn it off. Default true. */
  readonly authPenalty?: boolean;
  /** Extra top-level lines appended last (operator overrides; tests inject broken config with it). */
  readonly extraConf?: readonly string[];
}

/** A value going into dovecot.conf must be one line without braces that would open a block. */
export function confValue(value: string): string {
  if (/[\r\n{}]/.test(value)) throw new Error(`unsafe dovecot.conf value ${JSON.stringify(value)}`);
  return value;
}
