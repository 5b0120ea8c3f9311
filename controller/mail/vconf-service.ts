// VConfService: NetServa's per-domain variables. MQUOTA is the domain's default quota itself
// (read from and written to mail_vhosts, so the two can never disagree). Secrets — MPWD, DPASS
// and any name ending in PASS, PWD, PASSWORD or SECRET — are stored as a SHA512-CRYPT hash and
// listed as "(hash)"; NetServa kept them in clear, we never do.
import { notFound } from "../../common/errors.ts";
import { hashPassword } from "../../common/password/index.ts";
import {
  checkPasswordInput,
  formatQuota,
  parseDomain,
  parseQuota,
  parseVconfName,
} from "../../common/validation/index.ts";
import { VConf, VMailDomain } from "../db/entities/index.ts";
import type { VConfServiceApi, VConfView } from "./mail-api.ts";
import { detached, domainOnVnode, readVnode } from "./mail-lookups.ts";
import { vconfView } from "./mail-views.ts";
import { DEFAULT_QUOTA, checkMailboxQuota } from "./quota-rules.ts";
import type { ServiceDeps } from "./service-deps.ts";
import { upsertDomain } from "./state-changes.ts";
import { checkVconfValue, isSecretName } from "./vconf-values.ts";

const MQUOTA = "MQUOTA";

export function createVConfService({ ctx, mutate }: ServiceDeps): VConfServiceApi {
  return {
    async list(vnodeInput, domainInput) {
      const vnode = await readVnode(ctx.em, vnodeInput);
      const domain = await domainOnVnode(ctx.em, vnode, parseDomain(domainInput, "domain"));
      const rows = await ctx.em.find(VConf, { domainId: domain.id }, { ...detached, orderBy: { name: "asc" } });
      const views = rows.map((v) => vconfView(v, domain.domain));
      views.push(
        vconfView({ name: MQUOTA, value: formatQuota(Number(domain.defaultQuota)), secret: false }, domain.domain),
      );
      return views.sort((a, b) => a.name.localeCompare(b.name));
    },

    set(input) {
      return mutate({
        command: "chvconf",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: {
          domain: input.domain,
          name: input.name,
          value: loggedValue(input.name, input.value),
        },
        async prepare() {
          const domain = parseDomain(input.domain, "domain");
          const name = parseVconfName(input.name, "name");
          if (name === MQUOTA)
            return { domain, name, value: "", secret: false, quota: parseQuota(input.value, "value") };
          if (isSecretName(name))
            return {
              domain,
              name,
              value: await hashPassword(checkPasswordInput(input.value, "value")),
              secret: true,
              quota: undefined,
            };
          return { domain, name, value: checkVconfValue(input.value, "value"), secret: false, quota: undefined };
        },
        async apply({ em, vnode, now }, p) {
          const domain = await domainOnVnode(em, vnode, p.domain);
          let view: VConfView;
          if (p.quota !== undefined) {
            const quota = checkMailboxQuota(p.quota, domain, "value");
            await em.nativeUpdate(VMailDomain, { id: domain.id }, { defaultQuota: quota, updatedAt: now });
            view = vconfView({ name: MQUOTA, value: formatQuota(quota), secret: false }, domain.domain);
          } else {
            await em.execute(
              `insert into vconfs (domain_id, name, value, secret, created_at, updated_at) values (?, ?, ?, ?, ?, ?)
               on conflict (domain_id, name) do update set value = excluded.value, secret = excluded.secret, updated_at = excluded.updated_at`,
              [domain.id, p.name, p.value, p.secret, now, now],
            );
            view = vconfView(p, domain.domain);
          }
          // The lookup data is unchanged; re-sending the domain brings the agent to the new generation.
          return { value: view, changes: [upsertDomain(domain)] };
        },
      });
    },

    remove(input) {
      return mutate({
        command: "delvconf",
        vnode: input.vnode,
        dryRun: input.dryRun,
        requestId: input.requestId,
        args: { domain: input.domain, name: input.name },
        prepare: () => ({ domain: parseDomain(input.domain, "domain"), name: parseVconfName(input.name, "name") }),
        async apply({ em, vnode, now }, p) {
          const domain = await domainOnVnode(em, vnode, p.domain);
          if (p.name === MQUOTA) {
            // Back to the built-in default, within the domain's per-mailbox limit.
            const max = Number(domain.maxQuota);
            const quota = max > 0 ? Math.min(DEFAULT_QUOTA, max) : DEFAULT_QUOTA;
            await em.nativeUpdate(VMailDomain, { id: domain.id }, { defaultQuota: quota, updatedAt: now });
            return {
              value: vconfView({ name: MQUOTA, value: formatQuota(quota), secret: false }, domain.domain),
              changes: [upsertDomain(domain)],
            };
          }
          const row = await em.findOne(VConf, { domainId: domain.id, name: p.name }, detached);
          if (!row)
            throw notFound(
              `name: ${domain.domain} has no variable ${p.name} (see shvconf ${vnode.name} ${domain.domain})`,
            );
          await em.nativeDelete(VConf, { id: row.id });
          return { value: vconfView(row, domain.domain), changes: [upsertDomain(domain)] };
        },
      });
    },
  };
}

/** The value as the command log may show it: a secret's never, nor any value whose name was
 *  refused (`MPWD\n`, `db-pass`: a name that fails to parse may still name a secret). */
function loggedValue(name: unknown, value: unknown): unknown {
  try {
    return isSecretName(parseVconfName(name as string, "name")) ? "(secret)" : value;
  } catch {
    return "(not recorded: the name was refused)";
  }
}
