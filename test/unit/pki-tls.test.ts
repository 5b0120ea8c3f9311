// Issued certificates must work where they are used: mutual TLS with Node's tls (OpenSSL), the
// agent as server (dialled by vnode name), the controller as client. And TLS must refuse what
// the control plane refuses: another CA's certificate, the wrong name, an expired certificate.
import { createServer, connect } from "node:tls";
import type { Server, TLSSocket } from "node:tls";
import type { AddressInfo } from "node:net";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createCertificateAuthority, issueCertificate } from "../../common/pki/ca.ts";
import type { CertificateAuthority } from "../../common/pki/ca.ts";
import { inspectX509 } from "../../common/pki/inspect.ts";
import { generateRsaKeyPem } from "../../common/pki/rsa.ts";

interface Pair {
  key: string;
  cert: string;
}

let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let agent: Pair;
let controller: Pair;
let expiredController: Pair;
let strangerController: Pair;
let strangerAgent: Pair;

function issuePair(
  from: CertificateAuthority,
  key: string,
  role: "agent" | "controller",
  identity: string,
  notBefore?: Date,
): Pair {
  const issued = issueCertificate({
    caKeyPem: from.keyPem,
    caCertPem: from.certPem,
    publicKeyPem: key,
    role,
    identity,
    validSeconds: 3600,
    ...(notBefore ? { notBefore } : {}),
  });
  return { key, cert: issued.certPem };
}

beforeAll(async () => {
  const [caKey, otherKey, agentKey, controllerKey] = await Promise.all([
    generateRsaKeyPem(),
    generateRsaKeyPem(),
    generateRsaKeyPem(),
    generateRsaKeyPem(),
  ]);
  ca = await createCertificateAuthority({ commonName: "tls test CA", validDays: 1, keyPem: caKey });
  otherCa = await createCertificateAuthority({ commonName: "tls test CA", validDays: 1, keyPem: otherKey }); // same name, other key
  agent = issuePair(ca, agentKey, "agent", "mx1");
  controller = issuePair(ca, controllerKey, "controller", "ctl1");
  expiredController = issuePair(ca, controllerKey, "controller", "ctl1", new Date(Date.now() - 86_400_000));
  strangerController = issuePair(otherCa, controllerKey, "controller", "ctl1");
  strangerAgent = issuePair(otherCa, agentKey, "agent", "mx1");
});

const servers: Server[] = [];
const sockets = new Set<TLSSocket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

interface ServerHandle {
  port: number;
  clientErrors: Error[];
  /** Why OpenSSL refused a client, seen only when Node leaves the refusal to us. */
  authorizationErrors: string[];
}

/** An agent-like server: demands a client certificate from our CA, answers with who it saw.
 *  With rejectUnauthorized Node drops a refused client without saying why (tlsClientError
 *  reports only ECONNRESET); without it, the server must check `authorized` itself. */
async function startServer(identity: Pair, rejectUnauthorized = true): Promise<ServerHandle> {
  const clientErrors: Error[] = [];
  const authorizationErrors: string[] = [];
  const server = createServer(
    { key: identity.key, cert: identity.cert, ca: ca.certPem, requestCert: true, rejectUnauthorized },
    (socket) => {
      sockets.add(socket);
      if (!socket.authorized) {
        authorizationErrors.push(String(socket.authorizationError));
        socket.destroy();
        return;
      }
      const peer = socket.getPeerX509Certificate();
      const info = peer ? inspectX509(peer) : undefined;
      socket.end(`${info?.role ?? "?"}:${info?.identity ?? "?"}`);
    },
  );
  server.on("tlsClientError", (error) => clientErrors.push(error));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as AddressInfo).port, clientErrors, authorizationErrors };
}

/** Polls until `done()` (the server side of a refusal may finish after the client's). */
async function until(done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Connects as a controller would; resolves with what the server said or why it failed. */
function dial(port: number, identity: Pair, servername: string): Promise<{ data: string; error: Error | undefined }> {
  return new Promise((resolve) => {
    let data = "";
    let error: Error | undefined;
    const socket = connect({
      host: "127.0.0.1",
      port,
      servername,
      key: identity.key,
      cert: identity.cert,
      ca: ca.certPem,
    });
    sockets.add(socket);
    socket.setTimeout(5000, () => socket.destroy(new Error("timeout")));
    socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
    socket.on("error", (e) => (error = e));
    socket.on("close", () => resolve({ data, error }));
  });
}

describe("mutual TLS with issued certificates", () => {
  it("connects controller to agent and each sees the other's role and identity", async () => {
    const server = await startServer(agent);
    const result = await dial(server.port, controller, "mx1");
    expect(result.error).toBeUndefined();
    expect(result.data).toBe("controller:ctl1");
    expect(server.clientErrors).toEqual([]);
  });

  it("refuses a client certificate from another CA", async () => {
    const server = await startServer(agent);
    const result = await dial(server.port, strangerController, "mx1");
    expect(result.data).toBe("");
    await until(() => server.clientErrors.length > 0);
    expect(server.clientErrors.length).toBe(1);

    const lenient = await startServer(agent, false);
    expect((await dial(lenient.port, strangerController, "mx1")).data).toBe("");
    await until(() => lenient.authorizationErrors.length > 0);
    expect(lenient.authorizationErrors).toEqual(["UNABLE_TO_VERIFY_LEAF_SIGNATURE"]);
  });

  it("refuses an expired client certificate", async () => {
    const server = await startServer(agent);
    const result = await dial(server.port, expiredController, "mx1");
    expect(result.data).toBe("");
    await until(() => server.clientErrors.length > 0);
    expect(server.clientErrors.length).toBe(1);

    // The same handshake with the check left to the server shows the reason is the expiry.
    const lenient = await startServer(agent, false);
    expect((await dial(lenient.port, expiredController, "mx1")).data).toBe("");
    await until(() => lenient.authorizationErrors.length > 0);
    expect(lenient.authorizationErrors).toEqual(["CERT_HAS_EXPIRED"]);
  });

  it("refuses a server certificate from another CA", async () => {
    const server = await startServer(strangerAgent);
    const result = await dial(server.port, controller, "mx1");
    expect(result.data).toBe("");
    expect((result.error as NodeJS.ErrnoException | undefined)?.code).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
  });

  it("refuses a server whose certificate names another vnode", async () => {
    const server = await startServer(agent);
    const result = await dial(server.port, controller, "mx2");
    expect(result.data).toBe("");
    expect((result.error as NodeJS.ErrnoException | undefined)?.code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
  });
});
