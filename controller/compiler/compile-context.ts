// What compiling a vnode's state needs besides the database: the CA, to issue the mail daemons'
// TLS certificate when the operator has not supplied one.
import { readFileSync } from "node:fs";
import type { HomePaths } from "../home/home-paths.ts";
import type { CompileContext } from "./compile-state.ts";

export function compileContextFor(paths: HomePaths): CompileContext {
  return { caKeyPem: () => readFileSync(paths.caKey, "utf8"), caCertPem: () => readFileSync(paths.caCert, "utf8") };
}
