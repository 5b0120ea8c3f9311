// Who is on the other end of a TLS connection, read from the certificate the CA issued:
// the URI SAN `netserva-mail://<role>/<identity>` carries role and name; the serial is what
// revocation lists name.
import type { PeerCertificate } from "node:tls";
import { NetservaError } from "../errors.ts";

export type Role = "controller" | "agent" | "monitor";
export const ROLE_URI_PREFIX = "netserva-mail://";

export interface PeerIdentity {
  role: Role;
  identity: string;
  serial: string;
  notAfter: Date;
  /** The certificate itself (DER), for checks beyond its name. */
  der: Uint8Array;
}

/** Serial numbers compare as lowercase hex without leading zeros (Node prints them upper-case). */
export function normalizeSerial(hex: string): string {
  const clean = hex
    .replace(/[^0-9a-fA-F]/g, "")
    .toLowerCase()
    .replace(/^0+/, "");
  return clean === "" ? "0" : clean;
}

export function roleFromSubjectAltName(san: string | undefined): { role: Role; identity: string } | undefined {
  if (!san) return undefined;
  for (const entry of san.split(/,\s*/)) {
    if (!entry.startsWith("URI:" + ROLE_URI_PREFIX)) continue;
    const [role, identity] = entry.slice(4 + ROLE_URI_PREFIX.length).split("/");
    if ((role === "controller" || role === "agent" || role === "monitor") && identity) return { role, identity };
  }
  return undefined;
}

export function peerIdentity(cert: PeerCertificate | undefined | null): PeerIdentity {
  if (!cert || !cert.raw || cert.raw.length === 0) {
    throw new NetservaError("unauthenticated", "peer presented no client certificate");
  }
  const role = roleFromSubjectAltName(cert.subjectaltname);
  if (!role) throw new NetservaError("permission_denied", "peer certificate carries no netserva-mail role");
  return { ...role, serial: normalizeSerial(cert.serialNumber), notAfter: new Date(cert.valid_to), der: cert.raw };
}
