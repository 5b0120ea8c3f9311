// Module files of local.d/ (merged by Debian's modules.d/*.conf at priority 1).
import type { CheckedDkimKey } from "./dkim-keys.ts";
import { dkimKeyPath } from "./dkim-keys.ts";
import type { RspamdPaths } from "./paths.ts";
import { GENERATED, parseListen, uclString } from "./ucl.ts";

/**
 * Modules that query DNS or the network for every message (or fetch remote data). Without a
 * reachable resolver each one waits for DNS timeouts, so a test vnode turns them off explicitly.
 * Redis-only modules (greylist, ratelimit, neural, reputation, replies, history_redis) are
 * already off without a Redis server and are not listed.
 */
export const NETWORK_MODULES = [
  "rbl", // DNSBLs incl. URIBL/SURBL and email lists (3.x folds surbl and emails into rbl)
  "surbl",
  "emails",
  "fuzzy_check", // rspamd.com fuzzy storage over UDP
  "dcc",
  "asn", // asn.rspamd.com TXT per message
  "spf",
  "dmarc",
  "mx_check",
  "hfilter", // HELO/hostname A and MX lookups
  "phishing", // remote feeds
  "url_redirector",
  "rspamd_update",
] as const;

export const DISABLED_MODULE = `${GENERATED}# Turned off: needs DNS or the network, which this vnode does not have.\nenabled = false;\n`;

export function renderAntivirus(clamavSocket: string | undefined): string {
  if (clamavSocket === undefined) return `${GENERATED}# No virus scanner on this vnode.\n`;
  const l = parseListen(clamavSocket, "clamavSocket");
  const servers = l.kind === "unix" ? l.path : `${l.host}:${l.port}`;
  return `${GENERATED}clamav {
  type = "clamav";
  servers = ${uclString(servers, "clamavSocket")};
  symbol = "CLAM_VIRUS";
  # A virus is refused at SMTP time, never delivered or bounced.
  action = "reject";
  scan_mime_parts = true;
  scan_text_mime = false;
  scan_image_mime = false;
  max_size = 26214400;
  timeout = 15;
  retransmits = 1;
  log_clean = true;
}
`;
}

/**
 * Fail closed: when the scanner cannot be asked (clamd down, restarting or timing out), mail is
 * deferred with a 4xx and the sender retries, instead of passing unscanned. A virus found in
 * another part still rejects (honor_action).
 */
export function renderForceActions(clamavOn: boolean): string {
  if (!clamavOn) return `${GENERATED}# No virus scanner on this vnode: nothing to fail closed on.\n`;
  return `${GENERATED}rules {
  VIRUS_SCANNER_FAILED {
    action = "soft reject";
    expression = "CLAM_VIRUS_FAIL";
    honor_action = ["reject"];
    message = "4.7.1 Virus scanner unavailable, try again later";
  }
}
`;
}

/**
 * Sign mail whose From: domain has a key here, only for authenticated users of that same domain
 * (allow_username_mismatch = false) and locally submitted mail. One domain may have several
 * selectors (e.g. RSA + Ed25519): each produces its own DKIM-Signature.
 */
export function renderDkimSigning(paths: RspamdPaths, keys: readonly CheckedDkimKey[]): string {
  const byDomain = new Map<string, CheckedDkimKey[]>();
  for (const k of keys) byDomain.set(k.domain, [...(byDomain.get(k.domain) ?? []), k]);
  const domains = [...byDomain.keys()].sort().map((domain) => {
    const selectors = (byDomain.get(domain) ?? [])
      .map(
        (k) =>
          `      { selector = "${k.selector}"; path = ${uclString(dkimKeyPath(paths, domain, k.selector), "dkim path")}; }`,
      )
      .join("\n");
    return `  "${domain}" {\n    selectors = [\n${selectors}\n    ];\n  }`;
  });
  return `${GENERATED}enabled = ${keys.length > 0};
use_domain = "header";
sign_authenticated = true;
sign_local = true;
allow_username_mismatch = false;
allow_hdrfrom_mismatch = false;
# Exact domains only: a subdomain needs its own key, and no guessing of paths or selectors.
use_esld = false;
try_fallback = false;
use_redis = false;
domain {
${domains.join("\n")}
}
`;
}

/**
 * Headers Dovecot's Sieve can file on: X-Spam-Flag: YES for add_header and above, plus the
 * score. Forged copies arriving from outside are removed first. Authenticated (outgoing) mail
 * gets none.
 */
export function renderMilterHeaders(): string {
  return `${GENERATED}use = ["remove-spam-flag", "spam-header", "x-spam-status", "x-spamd-bar", "x-virus", "authentication-results"];
skip_local = false;
skip_authenticated = true;
routines {
  spam-header {
    header = "X-Spam-Flag";
    value = "YES";
    remove = 0;
  }
  x-spam-status {
    remove = 0;
  }
  x-virus {
    symbols = ["CLAM_VIRUS"];
  }
}
`;
}
