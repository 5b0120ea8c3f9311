// What the vnode serves over HTTPS, from the desired state: per hosted domain its MTA-STS policy
// (when it asked for one) and its mail client settings; and the answer to one request. Pure: the
// listener (web-server.ts) and the web-server directory (web-directory.ts) both use it.
import type { DesiredState } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { invalid } from "../../common/errors.ts";
import { parseAddress } from "../../common/validation/index.ts";
import { checkDomain } from "../lookup/names.ts";
import { autoconfigXml, autodiscoverEmail, autodiscoverXml } from "./client-config.ts";

export interface ServedDomainEntry {
  readonly domain: string;
  /** The mta-sts.txt body; empty = none. */
  readonly mtaStsPolicy: string;
  readonly mailHost: string;
}

export interface Site {
  readonly domains: ReadonlyMap<string, ServedDomainEntry>;
}

export const MTA_STS_PATH = "/.well-known/mta-sts.txt";
export const AUTOCONFIG_PATHS = ["/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"];
export const AUTODISCOVER_PATHS = ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"];

/** RFC 8461 §3.3: a policy larger than 64 KiB is not one. */
const MAX_POLICY = 64 * 1024;

/** Checks the served domains of a state; names the field of the first bad one. */
export function siteOf(state: DesiredState): Site {
  const domains = new Map<string, ServedDomainEntry>();
  state.served.forEach((s, i) => {
    const field = `served[${i}]`;
    const domain = checkDomain(s.domain, `${field}.domain`);
    const mailHost = checkDomain(s.mailHost, `${field}.mail_host`);
    if (s.mtaStsPolicy.length > MAX_POLICY || !/^[\x20-\x7e\r\n]*$/.test(s.mtaStsPolicy))
      throw invalid(`${field}.mta_sts_policy`, "must be printable ASCII lines, at most 64 KiB");
    if (s.mtaStsPolicy !== "" && !s.mtaStsPolicy.startsWith("version: STSv1"))
      throw invalid(`${field}.mta_sts_policy`, "must start with 'version: STSv1'");
    if (domains.has(domain)) throw invalid(`${field}.domain`, `${domain} is listed twice`);
    domains.set(domain, { domain, mtaStsPolicy: s.mtaStsPolicy, mailHost });
  });
  return { domains };
}

export interface WebRequest {
  readonly method: string;
  /** Host header (or SNI name) without port, lowercase. */
  readonly host: string;
  readonly path: string;
  readonly query: URLSearchParams;
  /** Request body (bounded by the server), for POST. */
  readonly body: string;
}

export interface WebAnswer {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

const notFound: WebAnswer = { status: 404, type: "text/plain; charset=utf-8", body: "not found\n" };
const xml = (body: string): WebAnswer => ({ status: 200, type: "application/xml; charset=utf-8", body });

/** The hosted domain a request is about: the host minus a known prefix, else an address's domain. */
function domainOf(site: Site, host: string, prefix: string, address?: string): ServedDomainEntry | undefined {
  if (address !== undefined) {
    try {
      return site.domains.get(parseAddress(address, "email").domain.ascii);
    } catch {
      return undefined;
    }
  }
  const name = host.startsWith(prefix) ? host.slice(prefix.length) : host;
  return site.domains.get(name);
}

export function answer(site: Site, req: WebRequest): WebAnswer {
  if (req.path === MTA_STS_PATH) {
    if (req.method !== "GET" && req.method !== "HEAD") return notFound;
    const d = req.host.startsWith("mta-sts.") ? site.domains.get(req.host.slice("mta-sts.".length)) : undefined;
    if (!d || d.mtaStsPolicy === "") return notFound;
    return { status: 200, type: "text/plain; charset=utf-8", body: d.mtaStsPolicy };
  }
  if (AUTOCONFIG_PATHS.includes(req.path)) {
    if (req.method !== "GET" && req.method !== "HEAD") return notFound;
    const asked = req.query.get("emailaddress") ?? undefined;
    const d = domainOf(site, req.host, "autoconfig.", asked) ?? domainOf(site, req.host, "autoconfig.");
    return d ? xml(autoconfigXml(d.domain, d.mailHost)) : notFound;
  }
  if (AUTODISCOVER_PATHS.includes(req.path)) {
    if (req.method !== "POST") return notFound;
    const email = autodiscoverEmail(req.body);
    const d = email === undefined ? undefined : domainOf(site, req.host, "autodiscover.", email);
    return d && email !== undefined ? xml(autodiscoverXml(d.mailHost, email)) : notFound;
  }
  return notFound;
}
