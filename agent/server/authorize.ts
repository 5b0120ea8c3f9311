// Only the controller may command an agent: a CA-issued certificate (checked by TLS), with the
// controller role, whose serial is not revoked. Runs before any handler.
//
// Reading the peer certificate (getPeerCertificate) costs more than a whole Ping, so the identity
// is read once per TLS connection and remembered on that socket; the revocation check still runs
// on every call, and a revocation pushed later closes the connection itself, streams included.
import type { Http2Session } from "node:http2";
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
function connectionOf(call: AuthorizableCall): { socket: TLSSocket; session: Http2Session } | undefined {
  let layer: unknown = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 6 && layer && typeof layer === "object"; depth += 1) {
    const stream = (layer as { stream?: { session?: Http2Session } }).stream;
    if (stream) {
      const session = stream.session;
      const socket: unknown = session?.socket;
      return session && socket instanceof TLSSocket && socket.authorized ? { socket, session } : undefined;
    }
    layer = (layer as { nextCall?: unknown }).nextCall;
  }
  return undefined;
}

export function authorizeController(call: AuthorizableCall, revocations: Revocations): PeerIdentity {
  const connection = connectionOf(call);
  let peer = connection ? identities.get(connection.socket) : undefined;
  if (!peer) {
    peer = peerIdentity(call.getAuthContext().sslPeerCertificate);
    if (connection) {
      const { socket, session } = connection;
      identities.set(socket, peer);
      // A revocation pushed later ends this connection (and its streams) at once; the
      // destroy waits a tick so the response to the push itself still goes out. (The HTTP/2
      // socket is a proxy that may not be destroyed directly: the session is.)
      const forget = revocations.guard(peer.serial, () => setImmediate(() => session.destroy()));
      session.once("close", forget);
    }
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
