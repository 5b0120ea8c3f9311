// `host:port` endpoints (controller address, database, DNS API): host is a DNS name (single
// labels such as "localhost" allowed), a dotted-quad IPv4 address or a bracketed IPv6 address
// without a zone id; the port is required, 1..65535, written without leading zeros.
// Internationalised host names must be given in A-label (xn--) form.
import { isIPv4, isIPv6 } from "node:net";
import { invalid } from "../errors.ts";
import { asciiLower, checkLdhLabel } from "./label.ts";
import { requireText, show } from "./text.ts";

export interface HostPort {
  /** Lower-case host name, IPv4 address, or IPv6 address without brackets. */
  readonly host: string;
  readonly port: number;
  readonly kind: "name" | "ipv4" | "ipv6";
}

const EXAMPLE = "host:port such as mail.example.com:4000, 192.0.2.1:4000 or [2001:db8::1]:4000";

function parsePort(text: string, field: string): number {
  const port = /^[1-9][0-9]{0,4}$/.test(text) ? Number(text) : 0;
  if (port < 1 || port > 65535) throw invalid(field, `port ${show(text)} must be a number from 1 to 65535`);
  return port;
}

function parseHostName(text: string, field: string): string {
  const name = asciiLower(text);
  if (name.length > 253) throw invalid(field, `host name is ${name.length} characters; the limit is 253`);
  if (name.endsWith("."))
    throw invalid(field, `host name ${show(text)} ends with a dot; write it without the trailing dot`);
  for (const label of name.split(".")) {
    if (label === "") throw invalid(field, `host name ${show(text)} has an empty label (a leading dot or '..')`);
    checkLdhLabel(label, field, "host name label");
  }
  if (/^[0-9.]+$/.test(name)) throw invalid(field, `host ${show(text)} is not a valid IPv4 address`);
  return name;
}

export function parseHostPort(input: string, field = "endpoint"): HostPort {
  const text = requireText(input, field, "endpoint", `a ${EXAMPLE}`);
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw invalid(field, `endpoint ${show(text)} has '[' without ']'; write a ${EXAMPLE}`);
    const host = text.slice(1, close).toLowerCase();
    if (host.includes("%")) throw invalid(field, `IPv6 zone ids ('%…') are not supported in ${show(text)}`);
    if (!isIPv6(host)) throw invalid(field, `${show(host)} is not an IPv6 address`);
    if (text[close + 1] !== ":") throw invalid(field, `endpoint ${show(text)} needs ':port' after ']'`);
    return { host, port: parsePort(text.slice(close + 2), field), kind: "ipv6" };
  }
  const colon = text.lastIndexOf(":");
  if (colon < 0) throw invalid(field, `endpoint ${show(text)} has no port; write a ${EXAMPLE}`);
  const hostText = text.slice(0, colon);
  if (hostText.includes(":")) throw invalid(field, `an IPv6 address needs brackets: write a ${EXAMPLE}`);
  if (hostText === "") throw invalid(field, `endpoint ${show(text)} has no host before ':'`);
  const port = parsePort(text.slice(colon + 1), field);
  if (isIPv4(hostText)) return { host: hostText, port, kind: "ipv4" };
  return { host: parseHostName(hostText, field), port, kind: "name" };
}
