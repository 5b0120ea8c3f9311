// Every DNS record a mail domain on a vnode should have, computed once for publishing (mail:dns)
// and for checking (mail:dns-check): MX to the vnode's mail host, SPF, DMARC, DKIM, optional
// MTA-STS and TLS-RPT, autoconfig/autodiscover for mail clients; and for the vnode itself the
// mail host's addresses and the PTR of each sending address.
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import { dkimRecordName, dkimRecordValue, type DkimKeyType } from "./dkim-txt.ts";
import type { MailDnsPolicyValues } from "./mail-policy.ts";
import { mtaStsPolicy, type MtaStsMode } from "./mta-sts.ts";

export type RecordType = "MX" | "TXT" | "CNAME" | "A" | "AAAA" | "PTR";

export interface ExpectedRecord {
  /** What it is for: mx, spf, dmarc, dkim:<selector>, mta-sts, mta-sts-host, tls-rpt, autoconfig, autodiscover, host, ptr. */
  check: string;
  name: string; // absolute, trailing dot
  type: RecordType;
  /** MX "10 mail.example.com.", TXT the joined value, CNAME/PTR an absolute name, A/AAAA an address. */
  values: string[];
  /** TXT at a shared name (the apex): only values starting with this are ours to replace. */
  prefix?: string;
  /** PTR: the address the reverse name stands for. */
  address?: string;
}

export interface DomainRecordInput {
  domain: string; // ASCII, no trailing dot
  mailHost: string; // ASCII, no trailing dot
  policy: MailDnsPolicyValues;
  dkim: ReadonlyArray<{ selector: string; algorithm: DkimKeyType; publicKey: string }>;
  /** The MTA-STS mode the vnode serves (mta-sts.ts); default testing. */
  mtaStsMode?: MtaStsMode;
}

export const MX_PRIORITY = 10;
const dot = (name: string): string => `${name}.`;

/** The policy's id changes exactly when the policy text does. */
export function mtaStsId(policy: string): string {
  return createHash("sha256").update(policy).digest("hex").slice(0, 20);
}

export function domainRecords(input: DomainRecordInput): ExpectedRecord[] {
  const d = input.domain;
  const host = dot(input.mailHost);
  const p = input.policy;
  const records: ExpectedRecord[] = [
    { check: "mx", name: dot(d), type: "MX", values: [`${MX_PRIORITY} ${host}`] },
    { check: "spf", name: dot(d), type: "TXT", values: [p.spf], prefix: "v=spf1" },
    {
      check: "dmarc",
      name: dot(`_dmarc.${d}`),
      type: "TXT",
      values: [`v=DMARC1; p=${p.dmarcPolicy}${p.dmarcRua ? `; rua=${p.dmarcRua}` : ""}`],
    },
  ];
  for (const k of input.dkim)
    records.push({
      check: `dkim:${k.selector}`,
      name: dkimRecordName(k.selector, d),
      type: "TXT",
      values: [dkimRecordValue(k.algorithm, k.publicKey)],
    });
  if (p.mtaSts) {
    records.push({
      check: "mta-sts",
      name: dot(`_mta-sts.${d}`),
      type: "TXT",
      values: [`v=STSv1; id=${mtaStsId(mtaStsPolicy(input.mailHost, input.mtaStsMode ?? "testing"))}`],
    });
    records.push({ check: "mta-sts-host", name: dot(`mta-sts.${d}`), type: "CNAME", values: [host] });
  }
  if (p.tlsRptRua)
    records.push({
      check: "tls-rpt",
      name: dot(`_smtp._tls.${d}`),
      type: "TXT",
      values: [`v=TLSRPTv1; rua=${p.tlsRptRua}`],
    });
  if (input.mailHost !== `autoconfig.${d}`)
    records.push({ check: "autoconfig", name: dot(`autoconfig.${d}`), type: "CNAME", values: [host] });
  if (input.mailHost !== `autodiscover.${d}`)
    records.push({ check: "autodiscover", name: dot(`autodiscover.${d}`), type: "CNAME", values: [host] });
  return records;
}

/** "10.0.0.1" → "1.0.0.10.in-addr.arpa."; IPv6 by nibbles under ip6.arpa. */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return `${ip.split(".").reverse().join(".")}.in-addr.arpa.`;
  const [head = "", tail = ""] = ip.split("::");
  const groups = (s: string): string[] => (s === "" ? [] : s.split(":"));
  const h = groups(head);
  const t = groups(tail);
  const full = [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t]
    .map((g) => g.padStart(4, "0"))
    .join("");
  return `${[...full].reverse().join(".")}.ip6.arpa.`;
}

/** The mail host's own addresses and the reverse names of the vnode's sending addresses. */
export function hostRecords(mailHost: string, sendingAddresses: readonly string[]): ExpectedRecord[] {
  const v4 = sendingAddresses.filter((a) => isIP(a) === 4);
  const v6 = sendingAddresses.filter((a) => isIP(a) === 6);
  const records: ExpectedRecord[] = [];
  if (v4.length > 0) records.push({ check: "host", name: dot(mailHost), type: "A", values: v4 });
  if (v6.length > 0) records.push({ check: "host", name: dot(mailHost), type: "AAAA", values: v6 });
  for (const ip of sendingAddresses)
    records.push({ check: "ptr", name: reverseName(ip), type: "PTR", values: [dot(mailHost)], address: ip });
  return records;
}
