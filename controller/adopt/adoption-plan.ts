// What adopting a NetServa vnode would import, and what it refuses (with the reason and a
// suggested fix), from the agent's read-only inventory. Pure: no database, no agent. The rules
// are the project's own (controller/mail/alias-rules.ts, common/validation), applied to the
// inventory as one whole: a malformed address, an alias loop, an alias to nowhere on a hosted
// domain, an inactive domain with active mailboxes, a hash Dovecot cannot verify. Nothing is
// switched while a refusal stands unless the operator skips it (`--skip`).
import type { ReadInventoryResponse } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import { parseAddress, parseAliasSource, parseDomain } from "../../common/validation/index.ts";
import { NetservaError } from "../../common/errors.ts";
import { hashCostProblem } from "../../common/password/hash-cost.ts";
import { adoptedHashForm } from "../../common/password/stored-hash-form.ts";

export interface Refusal {
  /** domain | mailbox | alias */
  readonly kind: string;
  /** The row it is about (address, source or domain): the `--skip` key. */
  readonly subject: string;
  readonly reason: string;
  readonly fix: string;
}

export interface AdoptionPlan {
  readonly domains: ReadInventoryResponse["domains"];
  readonly mailboxes: ReadInventoryResponse["mailboxes"];
  readonly aliases: ReadInventoryResponse["aliases"];
  readonly refusals: Refusal[];
  /** Mailboxes whose hash scheme is weak: imported (nobody is locked out) but flagged. */
  readonly weak: Array<{ address: string; scheme: string }>;
  readonly warnings: string[];
}

const MAX_DEPTH = 32;
const domainOf = (a: string): string => a.slice(a.lastIndexOf("@") + 1).toLowerCase();
const why = (error: unknown): string => NetservaError.from(error).message;

export function planAdoption(inv: ReadInventoryResponse, skip: ReadonlySet<string> = new Set()): AdoptionPlan {
  const refusals: Refusal[] = [];
  const refuse = (r: Refusal): void => void (skip.has(r.subject) ? undefined : refusals.push(r));
  const skipped = (subject: string): boolean => skip.has(subject);

  const domains = inv.domains.filter((d) => {
    try {
      parseDomain(d.domain, "domain");
      return !skipped(d.domain);
    } catch (error) {
      refuse({
        kind: "domain",
        subject: d.domain,
        reason: `malformed domain: ${why(error)}`,
        fix: "correct or delete the vhosts row",
      });
      return false;
    }
  });
  const hosted = new Map(domains.map((d) => [d.domain.toLowerCase(), d]));

  const mailboxes = inv.mailboxes.filter((m) => {
    if (skipped(m.address)) return false;
    try {
      parseAddress(m.address, "address");
    } catch (error) {
      refuse({
        kind: "mailbox",
        subject: m.address,
        reason: `malformed address: ${why(error)}`,
        fix: "correct or delete the vmails row",
      });
      return false;
    }
    const domain = hosted.get(domainOf(m.address));
    if (!domain) {
      refuse({
        kind: "mailbox",
        subject: m.address,
        reason: "its domain is not in vhosts",
        fix: "add the domain to vhosts or delete the mailbox",
      });
      return false;
    }
    if (!domain.active && m.active) {
      refuse({
        kind: "mailbox",
        subject: m.address,
        reason: `active mailbox in inactive domain ${domain.domain}`,
        fix: "deactivate the mailbox or activate the domain (or --skip it)",
      });
      return false;
    }
    if (m.scheme === "UNKNOWN" || adoptedHashForm(m.passwordHash) === undefined) {
      refuse({
        kind: "mailbox",
        subject: m.address,
        reason:
          m.scheme === "UNKNOWN"
            ? "its password is not a hash Dovecot verifies"
            : `its ${m.scheme} hash is not a form the managed vnode stores`,
        fix: "--skip it now and add it again after adopting (addvmail), or set a crypt hash in the vmails row",
      });
      return false;
    }
    const costly = hashCostProblem(m.passwordHash);
    if (costly !== undefined) {
      refuse({
        kind: "mailbox",
        subject: m.address,
        reason: costly,
        fix: "--skip it now and add it again after adopting (addvmail) with a new password",
      });
      return false;
    }
    if (!m.home.startsWith("/") || m.home.includes("..")) {
      refuse({
        kind: "mailbox",
        subject: m.address,
        reason: `home ${JSON.stringify(m.home)} is not an absolute path`,
        fix: "correct the home column",
      });
      return false;
    }
    return true;
  });
  const boxes = new Set(mailboxes.map((m) => m.address.toLowerCase()));

  const parsedAliases = inv.aliases.filter((a) => {
    if (skipped(a.source)) return false;
    try {
      const source = parseAliasSource(a.source, "source");
      if (!hosted.has(source.domain.ascii))
        throw new NetservaError("invalid_argument", `domain ${source.domain.ascii} is not in vhosts`);
      for (const t of a.targets) parseAddress(t, "target");
      if (a.active && boxes.has(source.source)) {
        refuse({
          kind: "alias",
          subject: a.source,
          reason: "it has the address of a mailbox (an alias may not shadow a mailbox here)",
          fix: "delete or deactivate the valias row (a copy elsewhere is a Sieve redirect after adopting)",
        });
        return false;
      }
      return true;
    } catch (error) {
      refuse({
        kind: "alias",
        subject: a.source,
        reason: `malformed: ${why(error)}`,
        fix: "correct or delete the valias row",
      });
      return false;
    }
  });
  const active = new Map(parsedAliases.filter((a) => a.active).map((a) => [a.source.toLowerCase(), a]));
  // Where mail to `address` goes next: a mailbox ends it; an alias or the domain's catch-all continues.
  const next = (address: string): string[] | undefined => {
    if (boxes.has(address)) return undefined;
    return (active.get(address) ?? active.get(`@${domainOf(address)}`))?.targets.map((t) => t.toLowerCase());
  };
  const aliases = parsedAliases.filter((a) => {
    if (!a.active) return true; // inactive: imported as it is, it routes nothing
    for (const target of a.targets.map((t) => t.toLowerCase())) {
      if (
        hosted.has(domainOf(target)) &&
        !boxes.has(target) &&
        !active.has(target) &&
        !active.has(`@${domainOf(target)}`)
      ) {
        refuse({
          kind: "alias",
          subject: a.source,
          reason: `target ${target} is on a hosted domain but is neither a mailbox nor an alias (mail to it would bounce)`,
          fix: `remove ${target} from the alias or create it`,
        });
        return false;
      }
    }
    // A loop: following the targets comes back to the source.
    const source = a.source.toLowerCase();
    const seen = new Set<string>();
    let frontier = a.targets.map((t) => t.toLowerCase());
    for (let depth = 0; depth < MAX_DEPTH && frontier.length > 0; depth++) {
      const after: string[] = [];
      for (const t of frontier) {
        if (
          t === source ||
          (source.startsWith("@") && domainOf(t) === source.slice(1) && !boxes.has(t) && !active.has(t))
        ) {
          refuse({
            kind: "alias",
            subject: a.source,
            reason: `loop: mail to ${a.source} comes back to it through ${t}`,
            fix: "break the loop in valias",
          });
          return false;
        }
        if (seen.has(t)) continue;
        seen.add(t);
        after.push(...(next(t) ?? []));
      }
      frontier = after;
    }
    return true;
  });

  return {
    domains,
    mailboxes,
    aliases,
    refusals,
    weak: mailboxes.filter((m) => m.weak).map((m) => ({ address: m.address, scheme: m.scheme })),
    warnings: [
      ...inv.warnings,
      // NetServa's alias map is asked before the mailbox map, so its catch-all also takes the
      // mail of the domain's own mailboxes; ours answers a mailbox first (virtual-mailbox-self).
      ...aliases
        .filter(
          (a) =>
            a.active &&
            a.source.startsWith("@") &&
            mailboxes.some((m) => m.active && domainOf(m.address) === a.source.slice(1)),
        )
        .map(
          (a) =>
            `catch-all ${a.source}: NetServa's maps send it the mail of the domain's mailboxes too; after adopting, each mailbox gets its own mail and only unknown addresses go to ${a.targets.join(", ")}`,
        ),
    ],
  };
}
