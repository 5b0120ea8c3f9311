// Mail data commands (NetServa names, vnode first). Each is a subcommand and a bin alias of the
// same name (package.json "bin"); each lives in its own module under ./mail/.
import type { Command } from "commander";
import type { CliContext } from "../cli-context.ts";
import { registerAddvmail } from "./mail/addvmail.ts";
import { registerShvmail } from "./mail/shvmail.ts";
import { registerChvmail } from "./mail/chvmail.ts";
import { registerDelvmail } from "./mail/delvmail.ts";
import { registerAddvalias } from "./mail/addvalias.ts";
import { registerShvalias } from "./mail/shvalias.ts";
import { registerChvalias } from "./mail/chvalias.ts";
import { registerDelvalias } from "./mail/delvalias.ts";
import { registerAddvmaildomain } from "./mail/addvmaildomain.ts";
import { registerShvmaildomain } from "./mail/shvmaildomain.ts";
import { registerChvmaildomain } from "./mail/chvmaildomain.ts";
import { registerDelvmaildomain } from "./mail/delvmaildomain.ts";
import { registerShvconf } from "./mail/shvconf.ts";
import { registerChvconf } from "./mail/chvconf.ts";
import { registerDelvconf } from "./mail/delvconf.ts";
import { registerMailImport } from "./mail/mail-import.ts";
import { registerMailExport } from "./mail/mail-export.ts";

const registrations: ReadonlyArray<readonly [string, (program: Command, ctx: CliContext) => void]> = [
  ["addvmail", registerAddvmail],
  ["shvmail", registerShvmail],
  ["chvmail", registerChvmail],
  ["delvmail", registerDelvmail],
  ["addvalias", registerAddvalias],
  ["shvalias", registerShvalias],
  ["chvalias", registerChvalias],
  ["delvalias", registerDelvalias],
  ["addvmaildomain", registerAddvmaildomain],
  ["shvmaildomain", registerShvmaildomain],
  ["chvmaildomain", registerChvmaildomain],
  ["delvmaildomain", registerDelvmaildomain],
  ["shvconf", registerShvconf],
  ["chvconf", registerChvconf],
  ["delvconf", registerDelvconf],
  ["mail:import", registerMailImport],
  ["mail:export", registerMailExport],
];

export const mailCommandNames = new Set<string>(registrations.map(([name]) => name));

export function registerMailCommands(program: Command, ctx: CliContext): void {
  for (const [, register] of registrations) register(program, ctx);
}
