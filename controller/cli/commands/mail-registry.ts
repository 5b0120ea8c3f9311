// Mail data commands (NetServa names, vnode first). Each is a subcommand and a bin alias of the
// same name (package.json "bin"); each lives in its own module under ./mail/, loaded only when
// that command runs (or for the full help).
import type { Command } from "commander";
import type { CliContext } from "../cli-context.ts";

type Register = (program: Command, ctx: CliContext) => void;

/** Name → the module's register function, imported on demand. */
export const mailCommandLoaders: ReadonlyArray<readonly [string, () => Promise<Register>]> = [
  ["addvmail", async () => (await import("./mail/addvmail.ts")).registerAddvmail],
  ["shvmail", async () => (await import("./mail/shvmail.ts")).registerShvmail],
  ["chvmail", async () => (await import("./mail/chvmail.ts")).registerChvmail],
  ["delvmail", async () => (await import("./mail/delvmail.ts")).registerDelvmail],
  ["addvalias", async () => (await import("./mail/addvalias.ts")).registerAddvalias],
  ["shvalias", async () => (await import("./mail/shvalias.ts")).registerShvalias],
  ["chvalias", async () => (await import("./mail/chvalias.ts")).registerChvalias],
  ["delvalias", async () => (await import("./mail/delvalias.ts")).registerDelvalias],
  ["addvmaildomain", async () => (await import("./mail/addvmaildomain.ts")).registerAddvmaildomain],
  ["shvmaildomain", async () => (await import("./mail/shvmaildomain.ts")).registerShvmaildomain],
  ["chvmaildomain", async () => (await import("./mail/chvmaildomain.ts")).registerChvmaildomain],
  ["delvmaildomain", async () => (await import("./mail/delvmaildomain.ts")).registerDelvmaildomain],
  ["shvconf", async () => (await import("./mail/shvconf.ts")).registerShvconf],
  ["chvconf", async () => (await import("./mail/chvconf.ts")).registerChvconf],
  ["delvconf", async () => (await import("./mail/delvconf.ts")).registerDelvconf],
  ["mail:import", async () => (await import("./mail/mail-import.ts")).registerMailImport],
  ["mail:export", async () => (await import("./mail/mail-export.ts")).registerMailExport],
];

export const mailCommandNames = new Set<string>(mailCommandLoaders.map(([name]) => name));
