// Where the controller keeps its CA, its own identity and the embedded database.
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export interface HomePaths {
  root: string;
  caKey: string;
  caCert: string;
  key: string;
  cert: string;
  config: string;
  dbDir: string;
  lock: string;
  socket: string;
}

/** `--home` wins, then NETSERVA_MAIL_HOME, then ~/.netserva-mail (the env is read by the caller). */
export function resolveHome(flag: string | undefined, envHome: string | undefined): string {
  return resolve(flag ?? envHome ?? join(homedir(), ".netserva-mail"));
}

export function homePaths(root: string): HomePaths {
  return {
    root,
    caKey: join(root, "ca", "ca.key"),
    caCert: join(root, "ca", "ca.crt"),
    key: join(root, "controller.key"),
    cert: join(root, "controller.crt"),
    config: join(root, "controller.json"),
    dbDir: join(root, "db"),
    lock: join(root, "db.lock"),
    socket: join(root, "controller.sock"),
  };
}
