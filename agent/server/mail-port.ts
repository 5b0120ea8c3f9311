// What the agent server needs from the vnode's mail host (agent/mail/). Kept as an interface so
// the channel can run without mail daemons (foundation tests, --no-mail) and with them.
import type { DesiredState, StateChange } from "../../common/gen/netserva/mail/v1/state_pb.ts";
import type { MailHealth } from "../../common/gen/netserva/mail/v1/agent_pb.ts";
import type { MailboxUsageRow } from "../health/mailbox-usage.ts";

export interface ApplyOutcome {
  changed: boolean;
  diff: string[];
  digest: string;
}

export interface ServiceStatus {
  name: string;
  state: string;
  version: string;
  detail: string;
}

export interface MailHostPort {
  applyState(state: DesiredState, options: { dryRun: boolean }): Promise<ApplyOutcome>;
  applyChanges(changes: StateChange[], options: { dryRun: boolean }): Promise<ApplyOutcome>;
  digest(): Promise<string>;
  drift(): Promise<string[]>;
  services(): Promise<ServiceStatus[]>;
  /** Mail health for the report and metrics (queue, users, filters, disk, quota, TLS). */
  health?(): Promise<MailHealth>;
  /** Every mailbox's usage (the report carries only a summary). */
  mailboxUsage?(): Promise<MailboxUsageRow[]>;
}
