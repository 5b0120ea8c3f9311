import type { SniEntry } from "../mail/sni-files.ts";
// Inputs shared by the Postfix renderers: everything comes from the desired state's settings,
// the vnode's paths and a few explicit options (no environment, no host probing).
import type { VnodePaths } from "../paths.ts";

export interface PostfixRenderOptions {
  readonly paths: VnodePaths;
  /** FQDN the daemons greet with (settings.mail_hostname). */
  readonly mailHostname: string;
  /** Addresses smtpd binds; empty = all. */
  readonly listenAddresses: readonly string[];
  readonly rspamdEnabled: boolean;
  /** Certificates by SNI name (mail/sni-files.ts); none = no SNI table. */
  readonly sni?: readonly SniEntry[];
  /** Milter endpoint of the spam filter, e.g. "inet:127.0.0.1:11332"; used only when rspamdEnabled. */
  readonly milterAddress?: string;
  /** Networks allowed to relay without SASL; loopback only by default. */
  readonly mynetworks?: readonly string[];
  /** Local users allowed to submit with sendmail (authorized_submit_users); default root and postfix. */
  readonly submitUsers?: readonly string[];
  /** Extra main.cf lines appended last (operator overrides; tests inject broken config with it). */
  readonly extraMainCf?: ReadonlyArray<readonly [string, string]>;
  /** Installation parameters (daemon_directory, …) as `postconf -d` reports them; see meta-files.ts. */
  readonly installParams?: ReadonlyArray<readonly [string, string]>;
}

/** A main.cf value must be one line; anything else would inject parameters. */
export function cfValue(name: string, value: string): string {
  if (/[\r\n]/.test(value) || !/^[a-z0-9_]+$/.test(name)) throw new Error(`unsafe main.cf entry ${name}`);
  return `${name} = ${value}`;
}
