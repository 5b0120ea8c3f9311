// The input half of adding a mailbox, done before any transaction: parse and check every field,
// and hash the password (given, imported as a hash, or generated from the CSPRNG).
import { invalid } from "../../common/errors.ts";
import { checkSieveScript, parseAddress, parseDisplayName, parseQuota } from "../../common/validation/index.ts";
import type { ParsedAddress } from "../../common/validation/index.ts";
import { parseBool } from "./limits.ts";
import type { AddMailboxInput } from "./mail-api.ts";
import { resolvePassword } from "./mailbox-password.ts";
import type { PasswordOutcome } from "./mailbox-password.ts";
import { timed } from "../../common/phase-timing.ts";
import { hashThreadState } from "../../common/password/hash-worker.ts";

export interface PreparedAdd {
  address: ParsedAddress;
  quota: number | undefined;
  displayName: string;
  catchAll: boolean;
  active: boolean;
  sieve: string | null;
  /** A promise while the hash thread still works on it: the transaction awaits it only when it
   *  writes the row, so the hash and the transaction's checks run at the same time. */
  password: PasswordOutcome | Promise<PasswordOutcome>;
}

/** One transaction should stay short: a batch bigger than this is split by the caller. */
export const MAX_BATCH = 10_000;

export type AddItemInput = Omit<AddMailboxInput, "vnode" | "dryRun" | "requestId">;

export async function prepareAdd(input: AddItemInput): Promise<PreparedAdd> {
  if (typeof input !== "object" || input === null)
    throw invalid("mailbox", "each mailbox must be an object with at least an address");
  const address = parseAddress(input.address, "email");
  const quota = input.quota === undefined ? undefined : parseQuota(input.quota, "quota");
  const displayName = input.name === undefined ? "" : parseDisplayName(input.name, "name");
  const catchAll = parseBool(input.catchAll, "catchAll") ?? false;
  const active = parseBool(input.active, "active") ?? true;
  const sieve = input.sieve === undefined ? null : checkSieveScript(input.sieve, "sieve");
  if (catchAll && address.local !== "admin") {
    throw invalid(
      "catchAll",
      `only an admin@ mailbox takes the @${address.domain.unicode} catch-all (NetServa's rule); for other targets add it as an alias: addvalias <vnode> @${address.domain.unicode} ${address.address}`,
    );
  }
  const generate = input.password === undefined && input.passwordHash === undefined;
  // The request is checked here (resolvePassword throws); only the hash itself may still run.
  const hashing = timed("mutation.hash", () =>
    resolvePassword({
      password: input.password,
      passwordHash: input.passwordHash,
      generate,
      scheme: input.scheme,
    }),
  ).then((outcome) => {
    if (!outcome) throw invalid("password", "no password"); // unreachable: one of the three is always given
    return outcome;
  });
  // On serve's hash thread the hash overlaps the transaction's first statements (the row lock is
  // held a few ms longer at most); hashed here, it is done before any transaction opens, so a
  // CPU-bound hash never holds the vnode lock. A refusal that comes first leaves it unread.
  if (hashThreadState().ready) {
    hashing.catch(() => undefined);
    return { address, quota, displayName, catchAll, active, sieve, password: hashing };
  }
  return { address, quota, displayName, catchAll, active, sieve, password: await hashing };
}

/** `prepareAdd` for each item, keeping each refusal beside its index instead of throwing. */
export async function prepareMany(
  items: readonly AddItemInput[],
): Promise<Array<{ index: number; prepared?: PreparedAdd; error?: unknown }>> {
  if (!Array.isArray(items)) throw invalid("mailboxes", "must be a list of mailboxes");
  if (items.length === 0) throw invalid("mailboxes", "no mailboxes given");
  if (items.length > MAX_BATCH)
    throw invalid("mailboxes", `${items.length} mailboxes in one call; the limit is ${MAX_BATCH} (split the batch)`);
  const out: Array<{ index: number; prepared?: PreparedAdd; error?: unknown }> = [];
  for (const [index, item] of items.entries()) {
    try {
      out.push({ index, prepared: await prepareAdd(item) });
    } catch (error) {
      out.push({ index, error });
    }
  }
  return out;
}
