// mail:configure-dkim as a service: new key(s) for a domain, stored, published or printed, and
// signing switched over once it is safe. The order makes every failure leave things as they were:
// input and zone are checked and the provider is asked before anything is generated or stored;
// a publish that fails removes the keys it was publishing; the vnode only sees new keys when the
// switch commits (one transaction with the generation bump).
//
// Lifecycle: first key without --publish → active at once (the operator publishes the printed
// record); with --publish, and always on --rotate → pending, published, and switched to active
// (the previous keys retire) once the record is visible over DNS. A pending key not yet visible is
// picked up again by the next run. Retired keys keep their record until --finish (or the next
// --rotate) removes it.
import type { SqlEntityManager } from "@mikro-orm/sql";
import { NetservaError, conflict, invalid } from "../../common/errors.ts";
import type { DnsLookup } from "../dns/dns-lookup.ts";
import type { DnsProvider } from "../dns/dns-provider.ts";
import { deleteRecords, publishRecords } from "../dns/publish-records.ts";
import type { ExpectedRecord } from "../dns/mail-records.ts";
import { generateDkimKey, parseBits } from "./dkim-keygen.ts";
import { dkimRecordName, dkimRecordValue } from "../dns/dkim-txt.ts";
import { newSelectors, parseAlgorithm } from "./dkim-record.ts";
import {
  activatePending,
  domainOnVnode,
  listDkimKeys,
  removePending,
  removeRetired,
  storeDkimKeys,
} from "./dkim-store.ts";
import type { DkimKeyInfo } from "./dkim-store.ts";
import { recordsVisible, waitVisible } from "./dkim-visibility.ts";

export interface ConfigureDkimInput {
  vnode: string;
  domain: string;
  selector?: string | undefined;
  algorithm?: string | undefined;
  bits?: string | undefined;
  publish?: boolean | undefined;
  rotate?: boolean | undefined;
  finish?: boolean | undefined;
}

export interface ConfigureDkimDeps {
  em: SqlEntityManager;
  /** Where --publish writes; undefined = no provider configured (records are printed). */
  provider: DnsProvider | undefined;
  lookup: DnsLookup;
  ttl: number;
  /** How long to wait for a published record to show over DNS. */
  waitMs: number;
}

export interface ConfigureDkimResult {
  domain: string;
  vnode: string;
  /** Keys made by this run. */
  created: DkimKeyInfo[];
  /** Keys that started signing in this run / stopped. */
  activated: DkimKeyInfo[];
  retired: DkimKeyInfo[];
  /** Retired keys forgotten (and their records deleted when publishing). */
  removed: DkimKeyInfo[];
  /** Keys waiting for their record to show over DNS. */
  pending: DkimKeyInfo[];
  /** Records for the operator to publish (always filled; published too with --publish). */
  records: ExpectedRecord[];
  published: boolean;
  /** New generation when the signing keys changed; null otherwise. */
  generation: number | null;
}

export function dkimRecord(
  k: Pick<DkimKeyInfo, "selector" | "algorithm" | "publicKey">,
  domain: string,
): ExpectedRecord {
  return {
    check: `dkim:${k.selector}`,
    name: dkimRecordName(k.selector, domain),
    type: "TXT",
    values: [dkimRecordValue(k.algorithm, k.publicKey)],
  };
}

export async function configureDkim(input: ConfigureDkimInput, deps: ConfigureDkimDeps): Promise<ConfigureDkimResult> {
  const choice = parseAlgorithm(input.algorithm);
  const bits = parseBits(input.bits);
  if (input.finish && (input.rotate || input.selector !== undefined || input.algorithm !== undefined))
    throw invalid("finish", "takes no --rotate, --selector or --algorithm");
  if (input.publish && !deps.provider)
    throw invalid(
      "publish",
      "no DNS provider configured: set NETSERVA_PDNS_URL and NETSERVA_PDNS_API_KEY (or dns.url/dns.apiKey in controller.json), or publish the printed record yourself",
    );
  const target = await domainOnVnode(deps.em, input.vnode, input.domain);
  const domain = target.domain.domain;
  const provider = input.publish ? deps.provider : undefined;
  // Asks the provider (zone list) before anything changes: down, wrong key, no zone all stop here.
  if (provider && (await provider.findZone(domain)) === undefined)
    throw invalid(
      "domain",
      `no zone at ${provider.kind} holds ${domain}: create the zone first, or drop --publish and publish the record yourself`,
    );
  const result: ConfigureDkimResult = {
    domain,
    vnode: target.vnode.name,
    created: [],
    activated: [],
    retired: [],
    removed: [],
    pending: [],
    records: [],
    published: provider !== undefined,
    generation: null,
  };
  const keys = await listDkimKeys(deps.em, target.domain.id);
  const retired = keys.filter((k) => k.state === "retired");
  const dropRetired = async (): Promise<void> => {
    if (retired.length === 0) return;
    if (provider)
      await deleteRecords(
        provider,
        retired.map((k) => dkimRecord(k, domain)),
      );
    await removeRetired(deps.em, target.domain.id);
    result.removed = retired;
  };
  if (input.finish) {
    await dropRetired();
    return result;
  }

  let pending = keys.filter((k) => k.state === "pending");
  const active = keys.filter((k) => k.state === "active");
  if (pending.length > 0) {
    if (input.selector !== undefined || input.algorithm !== undefined)
      throw conflict(
        `a rotation of ${domain} to ${pending.map((k) => k.selector).join(", ")} is in progress: run without --selector/--algorithm to continue it`,
        "failed_precondition",
      );
  } else {
    if (active.length > 0 && !input.rotate)
      throw conflict(
        `${domain} already signs with ${active.map((k) => `${k.selector} (${k.algorithm})`).join(", ")}: use --rotate for a new key; mail:dns ${target.vnode.name} ${domain} --show prints its records`,
      );
    const taken = new Set(keys.map((k) => k.selector));
    const wanted = newSelectors(choice, input.selector, taken);
    const generated = wanted.map((w) => ({ ...generateDkimKey(w.algorithm, bits), selector: w.selector }));
    const signAtOnce = active.length === 0 && !provider;
    const generation = await storeDkimKeys(deps.em, target, generated, signAtOnce ? "active" : "pending");
    result.created = generated.map((g) => ({
      selector: g.selector,
      algorithm: g.algorithm,
      bits: g.bits,
      publicKey: g.publicKey,
      state: signAtOnce ? "active" : "pending",
    }));
    if (signAtOnce) {
      result.activated = result.created;
      result.generation = generation;
    } else pending = result.created;
  }
  result.records = (pending.length > 0 ? pending : result.created).map((k) => dkimRecord(k, domain));
  if (pending.length === 0) return result;

  if (provider) {
    try {
      await publishRecords(provider, result.records, deps.ttl);
    } catch (error) {
      // Keys made by this run go again: a failed publish leaves the database as it was.
      if (result.created.length > 0)
        await removePending(
          deps.em,
          target.domain.id,
          result.created.map((k) => k.selector),
        );
      throw NetservaError.from(error);
    }
  }
  // The previous rotation's old keys go once the new ones are out (so a failed start keeps them).
  if (input.rotate && result.created.length > 0) await dropRetired();
  const visibleRecords = result.records.map((r) => ({ name: r.name, value: r.values[0] ?? "" }));
  const visible = provider
    ? await waitVisible(deps.lookup, visibleRecords, deps.waitMs)
    : await recordsVisible(deps.lookup, visibleRecords);
  if (!visible) {
    result.pending = pending.map((k) => ({ ...k, state: "pending" }));
    return result;
  }
  result.generation = await activatePending(deps.em, target);
  result.activated = pending.map((k) => ({ ...k, state: "active" }));
  result.retired = active.map((k) => ({ ...k, state: "retired" }));
  return result;
}
