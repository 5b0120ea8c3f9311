// Only the controller may command an agent: a CA-issued certificate (checked by TLS), with the
// controller role, whose serial is not revoked. Runs before any handler.
import type { PeerCertificate } from "node:tls";
import { NetservaError } from "../../common/errors.ts";
import { peerIdentity } from "../../common/identity/peer.ts";
import type { PeerIdentity } from "../../common/identity/peer.ts";
import type { Revocations } from "./revocations.ts";

export interface AuthorizableCall {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

export function authorizeController(call: AuthorizableCall, revocations: Revocations): PeerIdentity {
  const peer = peerIdentity(call.getAuthContext().sslPeerCertificate);
  if (peer.role !== "controller") {
    throw new NetservaError("permission_denied", `certificate of ${peer.role} '${peer.identity}' may not command an agent`);
  }
  if (revocations.has(peer.serial)) {
    throw new NetservaError("permission_denied", `certificate ${peer.serial} of '${peer.identity}' is revoked`);
  }
  return peer;
}
