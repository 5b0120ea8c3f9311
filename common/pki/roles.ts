// Who a certificate speaks for. The CA writes role and name into one URI SAN,
// `netserva-mail://<role>/<identity>`, so a peer's identity is read from what the CA signed and
// never from a hostname or a field the requester chose.
import { invalid } from "../errors.ts";

// monitor: read-only scrapers (Prometheus); accepted by /metrics only, never by AgentService.
export const PKI_ROLES = ["controller", "agent", "monitor"] as const;
export type PkiRole = (typeof PKI_ROLES)[number];

export const ROLE_URI_SCHEME = "netserva-mail:";
const ROLE_URI_PREFIX = `${ROLE_URI_SCHEME}//`;

// Vnode and controller names are DNS names (the agent's name is also its DNS SAN): lowercase
// labels of letters, digits and inner hyphens, at most 253 characters in all.
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function isPkiRole(value: unknown): value is PkiRole {
  return typeof value === "string" && (PKI_ROLES as readonly string[]).includes(value);
}

export function isIdentityName(value: unknown): value is string {
  return typeof value === "string" && value.length <= 253 && value.split(".").every((label) => LABEL.test(label));
}

/** Refuses anything that is not a role; returns it typed. */
export function checkRole(value: unknown, field = "role"): PkiRole {
  if (!isPkiRole(value)) throw invalid(field, `must be one of ${PKI_ROLES.join(", ")}`);
  return value;
}

/** Refuses a vnode or controller name that is not a lowercase DNS name. */
export function checkIdentity(value: unknown, field = "identity"): string {
  if (!isIdentityName(value)) {
    throw invalid(field, "must be a lowercase DNS name (letters, digits, '-', '.'; labels of 1-63, 253 at most)");
  }
  return value;
}

/** Free-form subject CNs (the CA's, a CSR's): 1-64 printable ASCII, no outer spaces. */
export function checkCommonName(value: unknown, field = "commonName"): string {
  if (typeof value !== "string" || !/^[\x20-\x7e]{1,64}$/.test(value) || value.trim() !== value) {
    throw invalid(field, "must be 1-64 printable ASCII characters without leading or trailing spaces");
  }
  return value;
}

/** The URI SAN naming a role and identity, e.g. `netserva-mail://agent/mx1`. */
export function roleUri(role: PkiRole, identity: string): string {
  return `${ROLE_URI_PREFIX}${checkRole(role)}/${checkIdentity(identity)}`;
}

/** Reads a URI SAN back; undefined when it is not a well-formed netserva-mail role URI. */
export function parseRoleUri(uri: string): { role: PkiRole; identity: string } | undefined {
  if (!uri.startsWith(ROLE_URI_PREFIX)) return undefined;
  const rest = uri.slice(ROLE_URI_PREFIX.length);
  const slash = rest.indexOf("/");
  if (slash < 0) return undefined;
  const role = rest.slice(0, slash);
  const identity = rest.slice(slash + 1);
  if (!isPkiRole(role) || !isIdentityName(identity)) return undefined;
  return { role, identity };
}
