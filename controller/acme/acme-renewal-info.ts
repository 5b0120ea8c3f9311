// ACME Renewal Information (ARI, RFC 9773), which acme-client does not implement: the server's
// directory may name a `renewalInfo` resource; GET `<renewalInfo>/<certificate ID>` answers with a
// `suggestedWindow` {start, end} in which to renew (moved into the past when the CA is about to
// revoke the certificate) and a Retry-After saying when to ask again. The certificate ID is
// base64url(AKI keyIdentifier) "." base64url(serial number's DER content octets); both are read
// from the leaf's DER here (Node's X509Certificate exposes neither the AKI nor the serial's bytes).
import { X509Certificate } from "node:crypto";
import acme from "acme-client";
import { NetservaError } from "../../common/errors.ts";
import { pemBlocks } from "../../common/pki/trust-bundle.ts";
import { prepareAcmeHttp, retryAfterOf } from "./acme-http.ts";

interface Tlv {
  tag: number;
  /** First content octet. */
  start: number;
  /** One past the last content octet. */
  end: number;
}

function tlv(der: Buffer, offset: number): Tlv {
  const tag = der[offset];
  const first = der[offset + 1];
  if (tag === undefined || first === undefined) throw new Error("truncated DER");
  let length = first;
  let start = offset + 2;
  if (first & 0x80) {
    const octets = first & 0x7f;
    if (octets === 0 || octets > 4) throw new Error("unsupported DER length");
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (der[start + i] ?? 0);
    start += octets;
  }
  const end = start + length;
  if (end > der.length) throw new Error("truncated DER");
  return { tag, start, end };
}

function children(der: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end;) {
    const child = tlv(der, at);
    out.push(child);
    at = child.end;
  }
  return out;
}

const AKI_OID = Buffer.from([0x55, 0x1d, 0x23]); // 2.5.29.35

/** The ARI certificate ID of a PEM chain's leaf; undefined when the leaf has no AKI key identifier. */
export function certificateId(chainPem: string): string | undefined {
  const leafPem = pemBlocks(chainPem)[0];
  if (leafPem === undefined) return undefined;
  const der = Buffer.from(new X509Certificate(leafPem).raw);
  const cert = tlv(der, 0);
  const tbs = children(der, cert)[0];
  if (tbs === undefined) return undefined;
  const fields = children(der, tbs);
  // [0] version is present in every v3 certificate; the serial is the first INTEGER.
  const serial = fields.find((f) => f.tag === 0x02);
  const extensionsWrapper = fields.find((f) => f.tag === 0xa3);
  if (serial === undefined || extensionsWrapper === undefined) return undefined;
  const extensions = children(der, extensionsWrapper)[0];
  if (extensions === undefined) return undefined;
  for (const extension of children(der, extensions)) {
    const [oid, ...rest] = children(der, extension);
    if (oid === undefined || !der.subarray(oid.start, oid.end).equals(AKI_OID)) continue;
    const value = rest.find((r) => r.tag === 0x04);
    if (value === undefined) return undefined;
    const aki = tlv(der, value.start);
    const keyIdentifier = children(der, aki).find((c) => c.tag === 0x80);
    if (keyIdentifier === undefined) return undefined;
    const b64 = (t: Tlv): string => der.subarray(t.start, t.end).toString("base64url");
    return `${b64(keyIdentifier)}.${b64(serial)}`;
  }
  return undefined;
}

export interface RenewalInfo {
  start: Date;
  end: Date;
  /** When to ask again (the answer's Retry-After, bounded). */
  checkAgainAt: Date;
  explanationUrl: string | null;
}

/** Without a Retry-After, ask again after 6 hours (Let's Encrypt's advice); never more often than
 *  once a minute nor less often than once a day, whatever the server says. */
const DEFAULT_RECHECK_MS = 6 * 3600_000;
const MIN_RECHECK_MS = 60_000;
const MAX_RECHECK_MS = 24 * 3600_000;

async function getJson(url: string): Promise<{ status: number; data: unknown; retryAfter: Date | undefined }> {
  const response = await acme.axios.get<unknown>(url, { validateStatus: null, responseType: "json" });
  return { status: response.status, data: response.data, retryAfter: retryAfterOf(response.headers) };
}

/** The server's suggested renewal window for a certificate, or undefined when it offers no ARI. */
export async function fetchRenewalInfo(
  server: { serverUrl: string; serverCaPem: string | null },
  certId: string,
  now = new Date(),
): Promise<RenewalInfo | undefined> {
  prepareAcmeHttp(server.serverUrl, server.serverCaPem);
  const directory = await getJson(server.serverUrl);
  const base = (directory.data as { renewalInfo?: unknown } | null)?.renewalInfo;
  if (typeof base !== "string" || base === "") return undefined;
  const answer = await getJson(`${base.replace(/\/$/, "")}/${certId}`);
  if (answer.status !== 200)
    throw new NetservaError("unavailable", `ACME renewal information for ${certId}: HTTP ${answer.status}`);
  const body = answer.data as { suggestedWindow?: { start?: unknown; end?: unknown }; explanationURL?: unknown };
  const start = new Date(String(body.suggestedWindow?.start));
  const end = new Date(String(body.suggestedWindow?.end));
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime()) || end < start)
    throw new NetservaError("unavailable", `ACME renewal information for ${certId}: no valid suggestedWindow`);
  const wait = answer.retryAfter ? answer.retryAfter.getTime() - now.getTime() : DEFAULT_RECHECK_MS;
  return {
    start,
    end,
    checkAgainAt: new Date(now.getTime() + Math.min(Math.max(wait, MIN_RECHECK_MS), MAX_RECHECK_MS)),
    explanationUrl: typeof body.explanationURL === "string" ? body.explanationURL.slice(0, 500) : null,
  };
}

/** A uniformly random moment in the window (RFC 9773 §4.2 spreads renewals); now if it is past. */
export function renewalInWindow(window: { start: Date; end: Date }, now = new Date(), random = Math.random): Date {
  const start = window.start.getTime();
  const end = window.end.getTime();
  const at = start + Math.floor(random() * (end - start));
  return new Date(Math.max(at, now.getTime()));
}
