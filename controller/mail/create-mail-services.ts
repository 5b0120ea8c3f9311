// The mail services on one entity manager: every rule lives in them, callers only parse flags
// and print. Pass an entity manager that is inside a transaction to run several mutations as
// savepoints of one batch (import); otherwise each mutation is its own transaction.
import type { CreateMailServices, MailServiceContext, MailServices } from "./mail-api.ts";
import { createMutator } from "./mutate.ts";
import { createVConfService } from "./vconf-service.ts";
import { createVMailAliasService } from "./vmail-alias-service.ts";
import { createVMailDomainService } from "./vmail-domain-service.ts";
import { createVMailboxService } from "./vmailbox-service.ts";

export const createMailServices: CreateMailServices = (ctx: MailServiceContext): MailServices => {
  const deps = { ctx, mutate: createMutator(ctx) };
  return {
    domains: createVMailDomainService(deps),
    mailboxes: createVMailboxService(deps),
    aliases: createVMailAliasService(deps),
    vconfs: createVConfService(deps),
  };
};
