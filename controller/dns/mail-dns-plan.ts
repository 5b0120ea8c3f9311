// What DNS should say for the mail of one vnode: its mail host and sending addresses, and per
// domain the records of mail-records.ts with the domain's stored policy and its DKIM keys
// (pending, active and retired keys are all published: pending ones are about to sign, retired
// ones may still verify mail in flight until `mail:configure-dkim --finish`).
import { isIP } from "node:net";
import type { SqlEntityManager } from "@mikro-orm/sql";
import { invalid } from "../../common/errors.ts";
import { parseDomain } from "../../common/validation/index.ts";
import { MailDnsPolicy, VMailDomain } from "../db/entities/index.ts";
import type { Vnode } from "../db/entities/index.ts";
import { mailHostnameOf } from "../db/entities/index.ts";
import { parseDmarcPolicy, parseRua, parseSpf, policyValues } from "./mail-policy.ts";
import type { MailDnsPolicyInput } from "./mail-policy.ts";
import { domainRecords, hostRecords } from "./mail-records.ts";
import { mtaStsModeOf } from "./presented-certificates.ts";
import { bumpGeneration } from "../db/generation.ts";
import type { DomainRecordInput, ExpectedRecord } from "./mail-records.ts";

export interface VnodeMailIdentity {
  /** The HELO / MX name (ASCII, no trailing dot). */
  mailHost: string;
  /** Addresses the vnode sends from: --address, else its mail listen addresses, else the agent's IP. */
  sendingAddresses: string[];
}

export function vnodeMailIdentity(vnode: Vnode, addresses?: string): VnodeMailIdentity {
  const host = mailHostnameOf(vnode);
  if (!host.includes("."))
    throw invalid(
      "mail-hostname",
      `vnode ${vnode.name} has no mail host name (an FQDN): set one with \`vnode set ${vnode.name} --mail-hostname mail.example.com\``,
    );
  const mailHost = parseDomain(host, "mail-hostname").ascii;
  if (addresses !== undefined) {
    const list = addresses.split(",").map((a) => a.trim());
    list.forEach((a, i) => {
      if (isIP(a) === 0) throw invalid("address", `entry ${i + 1} '${a.slice(0, 60)}' is not an IP address`);
    });
    return { mailHost, sendingAddresses: list };
  }
  const agentHost = vnode.address.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  const listen = (vnode.mailListen ?? []).filter((a) => isIP(a) !== 0 && a !== "0.0.0.0" && a !== "::");
  return { mailHost, sendingAddresses: listen.length > 0 ? listen : isIP(agentHost) !== 0 ? [agentHost] : [] };
}

/** `dkim`: the domain's keys (controller/dkim's listDkimKeys); `override`: policy flags of this
 * run, checked and laid over the stored policy. */
export async function planDomainRecords(
  em: SqlEntityManager,
  domain: VMailDomain,
  identity: VnodeMailIdentity,
  dkim: DomainRecordInput["dkim"],
  override: MailDnsPolicyInput = {},
): Promise<ExpectedRecord[]> {
  const stored = await em.fork().findOne(MailDnsPolicy, { domainId: domain.id });
  const base: MailDnsPolicyInput = stored
    ? {
        spf: stored.spf ?? null,
        dmarcPolicy: stored.dmarcPolicy ?? null,
        dmarcRua: stored.dmarcRua ?? null,
        mtaSts: stored.mtaSts,
        tlsRptRua: stored.tlsRptRua ?? null,
      }
    : {};
  return domainRecords({
    domain: domain.domain,
    mailHost: identity.mailHost,
    policy: policyValues({ ...base, ...checkPolicy(override) }),
    dkim,
    mtaStsMode: await mtaStsModeOf(em.fork(), domain.vnodeId, identity.mailHost),
  });
}

/** The policy flags given (absent ones left out), each checked; names the flag on refusal. */
export function checkPolicy(input: MailDnsPolicyInput): MailDnsPolicyInput {
  const changes: MailDnsPolicyInput = {};
  if (input.spf != null) changes.spf = parseSpf(input.spf);
  if (input.dmarcPolicy != null) changes.dmarcPolicy = parseDmarcPolicy(input.dmarcPolicy);
  if (input.dmarcRua != null) changes.dmarcRua = parseRua(input.dmarcRua, "rua");
  if (input.mtaSts !== undefined) changes.mtaSts = input.mtaSts;
  if (input.tlsRptRua != null) changes.tlsRptRua = parseRua(input.tlsRptRua, "tls-rpt");
  return changes;
}

export function planVnodeRecords(identity: VnodeMailIdentity): ExpectedRecord[] {
  return hostRecords(identity.mailHost, identity.sendingAddresses);
}

/** Checks the flags given and stores them as the domain's policy (absent flags keep their value).
 * Turning MTA-STS on or off changes what the vnode serves: its generation moves with the row. */
export async function saveDnsPolicy(
  em: SqlEntityManager,
  domainId: number,
  input: MailDnsPolicyInput,
): Promise<boolean> {
  const changes = checkPolicy(input);
  if (Object.keys(changes).length === 0) return false;
  await em.fork().transactional(async (tx) => {
    const row = await tx.findOne(MailDnsPolicy, { domainId });
    const served = (row?.mtaSts ?? false) !== (changes.mtaSts ?? row?.mtaSts ?? false);
    if (row) tx.assign(row, changes);
    else tx.create(MailDnsPolicy, { domainId, mtaSts: false, ...changes });
    await tx.flush();
    if (served) {
      const domain = await tx.findOneOrFail(VMailDomain, { id: domainId });
      await bumpGeneration(tx, domain.vnodeId);
    }
  });
  return true;
}
