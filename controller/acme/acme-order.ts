// One ACME order for a list of names (RFC 8555 §7.4): order, answer each pending authorization's
// challenge through the solver, wait for the server to validate, finalize with a CSR for a fresh
// ECDSA P-256 key, download the chain. The challenge records are removed whatever happens.
import acme from "acme-client";
import { X509Certificate } from "node:crypto";
import { NetservaError } from "../../common/errors.ts";
import { pemBlocks } from "../../common/pki/trust-bundle.ts";
import { AcmeRetryLater } from "./acme-http.ts";
import type { ChallengeAnswer, ChallengeSolver } from "./challenge-solver.ts";

export interface IssuedCertificate {
  chainPem: string;
  keyPem: string;
  issuer: string;
  notBefore: Date;
  notAfter: Date;
}

/** The issuer's common name (or whole DN) of the chain's leaf. */
export function issuerOf(leaf: X509Certificate): string {
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(leaf.issuer)?.[1];
  return cn ?? leaf.issuer.replace(/\n/g, ", ");
}

/** Places the order; with `replaces` (RFC 9773 §5, the ARI ID of the certificate it renews) first,
 *  and without it if the server refuses that (already replaced, or an ID it does not know). */
async function createOrder(
  client: acme.Client,
  names: readonly string[],
  replaces: string | undefined,
): Promise<acme.Order> {
  const identifiers = names.map((value) => ({ type: "dns", value }));
  if (replaces === undefined) return client.createOrder({ identifiers });
  try {
    return await client.createOrder({ identifiers, replaces } as Parameters<acme.Client["createOrder"]>[0]);
  } catch (error) {
    if (error instanceof AcmeRetryLater) throw error;
    return client.createOrder({ identifiers });
  }
}

export async function obtainCertificate(
  client: acme.Client,
  names: readonly string[],
  solver: ChallengeSolver,
  options: { replaces?: string } = {},
): Promise<IssuedCertificate> {
  await solver.check(names);
  const order = await createOrder(client, names, options.replaces);
  const authorizations = await client.getAuthorizations(order);
  const answers: Array<
    ChallengeAnswer & { challenge: acme.Authorization["challenges"][number]; authz: acme.Authorization }
  > = [];
  for (const authz of authorizations) {
    if (authz.status === "valid") continue; // validated recently for this account
    const challenge = authz.challenges.find((c) => c.type === solver.type);
    if (!challenge)
      throw new NetservaError(
        "failed_precondition",
        `${authz.identifier.value}: the ACME server offers no ${solver.type} challenge`,
      );
    const value = await client.getChallengeKeyAuthorization(challenge);
    answers.push({ name: authz.identifier.value, token: challenge.token, value, challenge, authz });
  }
  try {
    await solver.present(answers);
    for (const a of answers) await client.completeChallenge(a.challenge);
    for (const a of answers)
      try {
        await client.waitForValidStatus(a.authz);
      } catch (error) {
        throw new NetservaError(
          "failed_precondition",
          `${a.name}: ${solver.type} challenge failed: ${error instanceof Error ? error.message : String(error)}`,
          { cause: error },
        );
      }
  } finally {
    await solver.cleanup(answers).catch(() => undefined);
  }
  const key = await acme.crypto.createPrivateEcdsaKey();
  const [, csr] = await acme.crypto.createCsr({ commonName: names[0], altNames: [...names] }, key);
  const finalized = await client.finalizeOrder(order, csr);
  const chainPem = pemBlocks(await client.getCertificate(finalized)).join("");
  const leafPem = pemBlocks(chainPem)[0];
  if (leafPem === undefined) throw new NetservaError("unavailable", "the ACME server returned no certificate");
  const leaf = new X509Certificate(leafPem);
  for (const name of names)
    if (leaf.checkHost(name) === undefined)
      throw new NetservaError("internal", `the ACME server's certificate does not cover ${name}`);
  return {
    chainPem,
    keyPem: key.toString(),
    issuer: issuerOf(leaf),
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
  };
}
