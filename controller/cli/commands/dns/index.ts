// The DKIM and DNS commands: mail:configure-dkim, mail:dns, mail:dns-check.
import type { Command } from "commander";
import type { CliContext } from "../../cli-context.ts";
import { registerConfigureDkim } from "./configure-dkim.ts";
import { registerMailDns } from "./mail-dns.ts";
import { registerMailDnsCheck } from "./mail-dns-check.ts";

export function registerDnsCommands(program: Command, ctx: CliContext): void {
  registerConfigureDkim(program, ctx);
  registerMailDns(program, ctx);
  registerMailDnsCheck(program, ctx);
}
