import type { MigrationObject } from "@mikro-orm/core";
import { Migration0001Foundation } from "./0001-foundation.ts";

/** In order. Append only: a migration that has run anywhere is never edited. */
export const allMigrations: MigrationObject[] = [
  { name: "0001-foundation", class: Migration0001Foundation },
];
