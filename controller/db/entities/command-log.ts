import { defineEntity, p } from "@mikro-orm/core";

/** The audit trail: who ran what against which vnode, with what result and how long it took. */
export const CommandLogSchema = defineEntity({
  name: "CommandLog",
  tableName: "command_log",
  properties: {
    id: p.bigint("number").primary().autoincrement(),
    at: p
      .datetime()
      .onCreate(() => new Date())
      .index(),
    actor: p.string(),
    command: p.string(),
    vnodeName: p.string().nullable().index(),
    requestId: p.string().index(),
    generation: p.bigint("number").nullable(),
    /** ok | refused | error */
    result: p.string(),
    error: p.text().nullable(),
    durationMs: p.double(),
    args: p.json<Record<string, unknown>>().nullable(),
  },
});

export class CommandLog extends CommandLogSchema.class {}
CommandLogSchema.setClass(CommandLog);
