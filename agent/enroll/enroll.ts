// `netserva-mail-agent enroll`: key on the vnode, CSR to the controller, certificate back.
import { mkdirSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { EnrollRequestSchema } from "../../common/gen/netserva/mail/v1/enrollment_pb.ts";
import { NetservaError } from "../../common/errors.ts";
import { parseHostPort } from "../../common/validation/index.ts";
import { createKeyAndCsr } from "../../common/pki/keys.ts";
import { parseJoinToken } from "../../common/pki/join-token.ts";
import { writePublicFile } from "../../common/pki/files.ts";
import { inspectCertificate } from "../../common/pki/inspect.ts";
import type { AgentHomePaths } from "../home/agent-home.ts";
import { writeIdentityPair } from "../home/identity-pair.ts";
import { createEnrollmentClient } from "./enrollment-client.ts";
import { fetchPinnedCa } from "./pinned-ca.ts";
import { bundlePem, issuerIn, readTrustBundle } from "../../common/pki/trust-bundle.ts";

export async function enrollThisAgent(input: {
  controller: string;
  token: string;
  paths: AgentHomePaths;
  version: string;
}): Promise<{ vnode: string; notAfter: Date }> {
  const { host, port } = parseHostPort(input.controller, "controller");
  const token = parseJoinToken(input.token);
  const pinned = await fetchPinnedCa(host, port, token.caPin);
  const { keyPem, csrPem } = await createKeyAndCsr({ commonName: "netserva-mail agent" });
  const client = createEnrollmentClient({
    address: input.controller,
    caPem: pinned.anchorPem,
    expectFingerprint256: pinned.leafFingerprint256,
  });
  try {
    const response = await client.enroll(
      create(EnrollRequestSchema, { token: `${token.id}.${token.secret}`, csrPem, agentVersion: input.version }),
    );
    const info = inspectCertificate(response.certificatePem);
    if (info.role !== "agent" || info.identity !== response.vnode)
      throw new NetservaError("internal", "controller returned a certificate for another identity");
    // What to trust from now on: the controller's bundle (old and new CA during a rotation), which
    // must accept the certificate it just issued us.
    const trusted = readTrustBundle(response.caCertificatePem, "ca_certificate_pem");
    if (!issuerIn(response.certificatePem, trusted))
      throw new NetservaError("internal", "controller's CA bundle does not include the CA of our certificate");
    mkdirSync(input.paths.root, { recursive: true, mode: 0o700 });
    await writeIdentityPair(input.paths.root, { keyPem, certPem: response.certificatePem });
    await writePublicFile(input.paths.ca, bundlePem(trusted));
    await writePublicFile(
      input.paths.config,
      JSON.stringify(
        { vnode: response.vnode, controller: input.controller, enrolledAt: new Date().toISOString() },
        null,
        2,
      ) + "\n",
    );
    return { vnode: response.vnode, notAfter: info.notAfter };
  } finally {
    client.close();
  }
}
