// The DNS policy of a mail domain beyond MX and DKIM: SPF, DMARC, MTA-STS and TLS-RPT, checked
// here once so mail:dns and mail:dns-check expect the same records.
import { invalid } from "../../common/errors.ts";
import { parseAddress } from "../../common/validation/index.ts";

export interface MailDnsPolicyInput {
  spf?: string | null;
  dmarcPolicy?: string | null;
  dmarcRua?: string | null;
  mtaSts?: boolean;
  tlsRptRua?: string | null;
}

export interface MailDnsPolicyValues {
  spf: string;
  dmarcPolicy: "none" | "quarantine" | "reject";
  dmarcRua: string | null;
  mtaSts: boolean;
  tlsRptRua: string | null;
}

export const DEFAULT_SPF = "v=spf1 mx a -all";
export const DEFAULT_DMARC_POLICY = "quarantine";

export function parseSpf(value: string): string {
  const spf = value.trim().replace(/\s+/g, " ");
  if (!/^v=spf1( |$)/i.test(spf)) throw invalid("spf", "must start with 'v=spf1', e.g. \"v=spf1 mx a -all\"");
  if (!/^[\x20-\x7e]+$/.test(spf) || spf.length > 450)
    throw invalid("spf", "must be printable ASCII, at most 450 characters");
  if (!/[-~?+]all$|redirect=\S+$/i.test(spf))
    throw invalid("spf", "should end in an 'all' mechanism (-all, ~all) or a redirect=");
  return spf;
}

/** A comma-separated list of mailto: report addresses (DMARC rua, TLS-RPT rua). */
export function parseRua(value: string, field: string): string {
  const uris = value.split(",").map((u) => u.trim());
  for (const uri of uris) {
    if (!/^mailto:/i.test(uri))
      throw invalid(field, `'${uri.slice(0, 60)}' must be a mailto: URI, e.g. mailto:dmarc@example.com`);
    parseAddress(uri.slice("mailto:".length).replace(/!\d+[kmgt]?$/i, ""), field);
  }
  return uris.join(",");
}

export function parseDmarcPolicy(value: string): "none" | "quarantine" | "reject" {
  const v = value.toLowerCase();
  if (v !== "none" && v !== "quarantine" && v !== "reject")
    throw invalid("dmarc-policy", `'${value.slice(0, 24)}' is not none, quarantine or reject`);
  return v;
}

/** Stored values (null = default) to what is published. */
export function policyValues(stored: MailDnsPolicyInput): MailDnsPolicyValues {
  return {
    spf: stored.spf ? parseSpf(stored.spf) : DEFAULT_SPF,
    dmarcPolicy: parseDmarcPolicy(stored.dmarcPolicy ?? DEFAULT_DMARC_POLICY),
    dmarcRua: stored.dmarcRua ? parseRua(stored.dmarcRua, "rua") : null,
    mtaSts: stored.mtaSts === true,
    tlsRptRua: stored.tlsRptRua ? parseRua(stored.tlsRptRua, "tls-rpt") : null,
  };
}
