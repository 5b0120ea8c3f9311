// Scale harness only: a mail host that records what the agent server tells it (whole states with
// their generation, row changes) instead of rendering files and running daemons. It keeps the rows
// and their digest exactly as a real vnode would report them (common/state/lookup-digest.ts), so
// the controller's reconciler compares digests against it as it does against a real agent. The
// real agent, with the real mail host, is what every other test uses.
import { create } from "@bufbuild/protobuf";
import { MailHealthSchema } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { MailHealth } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { DesiredState, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import { EMPTY_DIGEST, lookupDigestOf } from "../../common/state/lookup-digest.ts";
import type { ApplyOutcome, MailHostPort, ServiceReport } from "../../agent/server/mail-port.ts";

export interface RecordedCall {
  kind: "state" | "changes";
  /** The state's generation (ApplyState); changes carry none of their own. */
  generation?: bigint;
  /** Mailbox addresses the call upserted (a whole state: all of them). */
  mailboxes: string[];
  at: number;
}

export interface RecordingMailHost extends MailHostPort {
  /** Every non-dry-run apply, oldest first. */
  readonly calls: readonly RecordedCall[];
  /** The generation of the last whole state applied ("0" before any). */
  readonly stateGeneration: bigint;
  readonly domains: ReadonlySet<string>;
  readonly mailboxes: ReadonlySet<string>;
  readonly aliases: ReadonlySet<string>;
}

const SERVICES: ServiceReport[] = [
  { name: "postfix", state: "active", version: "swarm", detail: "recorded, not running" },
  { name: "dovecot", state: "active", version: "swarm", detail: "recorded, not running" },
];

export function createRecordingMailHost(): RecordingMailHost {
  const calls: RecordedCall[] = [];
  // The rows as the compiler sends them, by key: enough to recompute the digest after a change.
  let state: Pick<DesiredState, "domains" | "mailboxes" | "aliases"> = { domains: [], mailboxes: [], aliases: [] };
  let digest = EMPTY_DIGEST;
  let stateGeneration = 0n;
  let applied = false;

  const outcome = (before: string): ApplyOutcome => ({ changed: before !== digest, diff: [], digest });
  const applyChange = (rows: typeof state, change: StateChange): typeof state => {
    const k = change.kind;
    switch (k.case) {
      case "upsertDomain":
        return { ...rows, domains: [...rows.domains.filter((d) => d.domain !== k.value.domain), k.value] };
      case "deleteDomain":
        return { ...rows, domains: rows.domains.filter((d) => d.domain !== k.value) };
      case "upsertMailbox":
        return { ...rows, mailboxes: [...rows.mailboxes.filter((m) => m.address !== k.value.address), k.value] };
      case "deleteMailbox":
        return { ...rows, mailboxes: rows.mailboxes.filter((m) => m.address !== k.value) };
      case "upsertAlias":
        return { ...rows, aliases: [...rows.aliases.filter((a) => a.source !== k.value.source), k.value] };
      case "deleteAlias":
        return { ...rows, aliases: rows.aliases.filter((a) => a.source !== k.value) };
      default:
        return rows;
    }
  };

  return {
    get calls() {
      return calls;
    },
    get stateGeneration() {
      return stateGeneration;
    },
    get domains() {
      return new Set(state.domains.map((d) => d.domain));
    },
    get mailboxes() {
      return new Set(state.mailboxes.map((m) => m.address));
    },
    get aliases() {
      return new Set(state.aliases.map((a) => a.source));
    },
    async applyState(next, options) {
      const rows = { domains: [...next.domains], mailboxes: [...next.mailboxes], aliases: [...next.aliases] };
      const nextDigest = lookupDigestOf(rows);
      if (options.dryRun) return { changed: nextDigest !== digest, diff: [], digest };
      const before = digest;
      state = rows;
      digest = nextDigest;
      stateGeneration = next.generation;
      applied = true;
      calls.push({
        kind: "state",
        generation: next.generation,
        mailboxes: rows.mailboxes.map((m) => m.address),
        at: Date.now(),
      });
      return outcome(before);
    },
    async applyChanges(changes, options) {
      const rows = changes.reduce(applyChange, state);
      if (options.dryRun) return { changed: lookupDigestOf(rows) !== digest, diff: [], digest };
      const before = digest;
      state = rows;
      digest = lookupDigestOf(rows);
      calls.push({
        kind: "changes",
        mailboxes: changes.flatMap((c) => (c.kind.case === "upsertMailbox" ? [c.kind.value.address] : [])),
        at: Date.now(),
      });
      return outcome(before);
    },
    digest: async () => digest,
    drift: async () => [],
    services: async () => (applied ? SERVICES : SERVICES.map((s) => ({ ...s, state: "stopped" }))),
    // A small mail section: with it the controller makes its per-report digest check, as for a
    // real vnode (a report without one is an agent without mail, which it does not check).
    health: async (): Promise<MailHealth> =>
      create(MailHealthSchema, { collectedUnixMs: BigInt(Date.now()), dovecotUsers: 0, dovecotConnections: 0 }),
    mailboxUsage: async () => [],
  };
}
