// `ca rekey`: the CA keys kept in the database re-sealed under a new key-encryption key, every
// row in one transaction (run under the CA step lock, ca-step-lock.ts): the database holds keys
// sealed under the old KEK or under the new one, never a mix. The CA keys themselves do not
// change, so nothing is re-issued and no controller rewrites its home.
//
// The change-over (README, "The CA across controllers"): first every controller is given the new
// KEK with the old one as NETSERVA_CA_KEK_PREVIOUS_FILE (each opens either, and seals under the
// one the database uses); then `ca rekey`; then the previous one is dropped everywhere. Running
// controllers publish the ids of the KEKs they hold (controllers.kek_ids, from their heartbeat):
// `ca rekey` refuses while a live one lacks the new KEK, naming it, unless forced.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError } from "../../common/errors.ts";
import { CertificateAuthority } from "../db/entities/index.ts";
import { LEASE_TTL_MS } from "../db/lease-timing.ts";
import { kekId, missingKek, openCaKey, openCaKeyWith, sealCaKey, type Kek, type KekKey } from "./ca-seal.ts";

export interface Rekeyed {
  /** The CAs whose keys were re-sealed (none when they already were under the new KEK). */
  resealed: Array<{ pin: string; state: string }>;
  /** Where the KEK they were sealed under came from ("NETSERVA_CA_KEK_PREVIOUS_FILE=…"). */
  from: string[];
  /** The new KEK's id (kekId). */
  kekId: string;
  /** Live controllers re-sealed past without the new KEK (only with force). */
  without: string[];
}

/** Live controllers (heartbeat within the lease TTL) that do not hold the KEK with id `id`. */
async function controllersWithout(em: SqlEntityManager, id: string): Promise<string[]> {
  const rows = (await em.execute(
    "select name, kek_ids from controllers where heartbeat_at > now() - make_interval(secs => ?) order by name, id",
    [LEASE_TTL_MS / 1000],
  )) as Array<{ name: string; kek_ids: string | null }>;
  return rows
    .filter((r) => !(r.kek_ids ?? "").split(",").includes(id))
    .map((r) =>
      r.kek_ids
        ? `${r.name} (holds KEK ${r.kek_ids.split(",").join(" and ")})`
        : `${r.name} (publishes no KEK id: no KEK, or an earlier release)`,
    );
}

export async function rekeyCa(
  em: SqlEntityManager,
  kek: Kek | undefined,
  next: KekKey,
  options: { force?: boolean } = {},
): Promise<Rekeyed> {
  const id = kekId(next);
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
  if (resealed.length === 0) return { resealed, from: [], kekId: id, without: [] };
  const without = await controllersWithout(em, id);
  if (without.length > 0 && !options.force)
    throw new NetservaError(
      "failed_precondition",
      `${without.length === 1 ? "a running controller does" : `${without.length} running controllers do`} not hold the new ` +
        `KEK (${id}): ${without.join(", ")}. Give each the new KEK as NETSERVA_CA_KEK_FILE with the old one as ` +
        "NETSERVA_CA_KEK_PREVIOUS_FILE and restart it, then run `netserva-mail ca rekey` again " +
        "(--force re-seals anyway: those controllers are then refused at their next CA step or restart)",
    );
  await em.flush();
  return { resealed, from: [...from], kekId: id, without };
}
