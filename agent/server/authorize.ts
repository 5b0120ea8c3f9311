// Only the controller may command an agent: a CA-issued certificate (checked by TLS), with the
// controller role, whose serial is not revoked. Runs before any handler.
//
// Reading the peer certificate (getPeerCertificate) costs more than a whole Ping, so the identity
// is read once per TLS connection and remembered on that socket; the revocation check still runs
// on every call, so a revocation takes effect at once on open connections too.
import { TLSSocket } from "node:tls";
import type { PeerCertificate } from "node:tls";
import { NetservaError } from "../../common/errors.ts";
import { peerIdentity } from "../../common/identity/peer.ts";
import type { PeerIdentity } from "../../common/identity/peer.ts";
import type { Revocations } from "./revocations.ts";

export interface AuthorizableCall {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

const identities = new WeakMap<TLSSocket, PeerIdentity>();

/** grpc-js keeps the HTTP/2 stream a few wrappers down; absent (other versions) means no cache. */
function tlsSocketOf(call: AuthorizableCall): TLSSocket | undefined {
  let layer: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 6 && layer && typeof layer === "object"; depth += 1) {
    const stream = (layer as { stream?: { session?: { socket?: unknown } } }).stream;
    if (stream) {
      const socket = stream.session?.socket;
      return socket instanceof TLSSocket && socket.authorized ? socket : undefined;
    }
    layer = (layer as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

export function authorizeController(call: AuthorizableCall, revocations: Revocations): PeerIdentity {
  const socket = tlsSocketOf(call);
  let peer = socket ? identities.get(socket) : undefined;
  if (!peer) {
    peer = peerIdentity(call.getAuthContext().sslPeerCertificate);
    if (socket) identities.set(socket, peer);
  }
  if (peer.role !== "controller") {
    throw new NetservaError(
      "permission_denied",
      `certificate of ${peer.role} '${peer.identity}' may not command an agent`,
    );
  }
  if (revocations.has(peer.serial)) {
    throw new NetservaError("permission_denied", `certificate ${peer.serial} of '${peer.identity}' is revoked`);
  }
  return peer;
}
