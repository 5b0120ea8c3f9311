// What each service module is built from: the caller's context and the shared mutation runner.
import { invalid } from "../../common/errors.ts";
import type { MailServiceContext } from "./mail-api.ts";
import type { Mutate } from "./mutate.ts";

export interface ServiceDeps {
  ctx: MailServiceContext;
  mutate: Mutate;
}

/** Refuses a change call that names nothing to change (it would bump the generation for nothing). */
export function requireSomething(fields: Record<string, unknown>, hint: string): void {
  if (Object.values(fields).every((v) => v === undefined)) throw invalid("change", `nothing to change: give ${hint}`);
}
