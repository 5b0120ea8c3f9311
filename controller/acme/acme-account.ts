// Our account at an ACME server: created on first use (ECDSA P-256 key, terms of service agreed
// on the operator's behalf by `mail:tls acme`), its key and URL kept in acme_accounts like the
// other keys. Two controllers creating the same account at once: the first row wins, and the
// other's account is simply never used again.
import acme from "acme-client";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { AcmeAccount } from "../db/entities/index.ts";
import { prepareAcmeHttp } from "./acme-http.ts";

export interface AcmeServerChoice {
  serverUrl: string;
  serverCaPem: string | null;
  email: string | null;
}

/** How an order polls: short first waits (validation usually takes seconds), bounded in total. */
const POLLING = { backoffAttempts: 12, backoffMin: 500, backoffMax: 10_000 };

export async function acmeClientFor(em: SqlEntityManager, server: AcmeServerChoice): Promise<acme.Client> {
  prepareAcmeHttp(server.serverUrl, server.serverCaPem);
  const contact = server.email ? [`mailto:${server.email}`] : [];
  const existing = await em.fork().findOne(AcmeAccount, { serverUrl: server.serverUrl });
  if (existing) {
    const client = new acme.Client({
      directoryUrl: server.serverUrl,
      accountKey: existing.accountKeyPem,
      ...(existing.accountUrl ? { accountUrl: existing.accountUrl } : {}),
      ...POLLING,
    });
    if (server.email !== null && server.email !== existing.email) {
      await client.updateAccount({ contact });
      await em.fork().nativeUpdate(AcmeAccount, { id: existing.id }, { email: server.email });
    }
    return client;
  }
  const accountKey = (await acme.crypto.createPrivateEcdsaKey()).toString();
  const client = new acme.Client({ directoryUrl: server.serverUrl, accountKey, ...POLLING });
  await client.createAccount({ termsOfServiceAgreed: true, ...(contact.length > 0 ? { contact } : {}) });
  await em
    .fork()
    .getConnection()
    .execute(
      "insert into acme_accounts (server_url, email, account_key_pem, account_url) values (?, ?, ?, ?) on conflict (server_url) do nothing",
      [server.serverUrl, server.email, accountKey, client.getAccountUrl()],
    );
  return client;
}
