// `ca rekey`: the CA keys kept in the database re-sealed under a new key-encryption key, every
// row in one transaction (run under the CA step lock, ca-step-lock.ts): the database holds keys
// sealed under the old KEK or under the new one, never a mix. The CA keys themselves do not
// change, so nothing is re-issued and no controller rewrites its home.
//
// The change-over (README, "The CA across controllers"): first every controller is given the new
// KEK with the old one as NETSERVA_CA_KEK_PREVIOUS_FILE (each opens either, and seals under the
// one the database uses); then `ca rekey`; then the previous one is dropped everywhere.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { CertificateAuthority } from "../db/entities/index.ts";
import { missingKek, openCaKey, openCaKeyWith, sealCaKey, type Kek, type KekKey } from "./ca-seal.ts";

export interface Rekeyed {
  /** The CAs whose keys were re-sealed (none when they already were under the new KEK). */
  resealed: Array<{ pin: string; state: string }>;
  /** Where the KEK they were sealed under came from ("NETSERVA_CA_KEK_PREVIOUS_FILE=…"). */
  from: string[];
}

export async function rekeyCa(em: SqlEntityManager, kek: Kek | undefined, next: KekKey): Promise<Rekeyed> {
  const rows = await em.find(CertificateAuthority, { keySealed: { $ne: null } }, { orderBy: { id: "asc" } });
  if (rows.length === 0)
    throw new NetservaError(
      "failed_precondition",
      "the database keeps no sealed CA key (certificate_authorities.key_sealed): nothing to re-seal. " +
        "A controller given a KEK puts the CA there with `netserva-mail init`",
    );
  if (!kek) throw missingKek();
  const resealed: Rekeyed["resealed"] = [];
  const from = new Set<string>();
  for (const row of rows) {
    const sealed = row.keySealed as string;
    // Opened with what this process holds (its KEK or its previous one): a wrong KEK stops here.
    const opened = openCaKeyWith(kek, sealed, row.pin);
    if (opened.by.key.equals(next.key)) continue;
    const again = sealCaKey(next, opened.keyPem, row.pin);
    // Checked before anything is written: the new seal opens with the new KEK alone.
    if (openCaKey(next, again, row.pin) !== opened.keyPem)
      throw new NetservaError("internal", `re-sealing the key of CA ${row.pin} did not round-trip`);
    row.keySealed = again;
    resealed.push({ pin: row.pin, state: row.state });
    from.add(opened.by.source);
  }
  await em.flush();
  return { resealed, from: [...from] };
}
