// Mail data commands (NetServa names). Filled in by the mail-data issue.
import type { Command } from "commander";
import type { CliContext } from "../cli-context.ts";

export const mailCommandNames = new Set<string>();

export function registerMailCommands(_program: Command, _ctx: CliContext): void {}
