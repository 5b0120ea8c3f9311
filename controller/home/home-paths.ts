// Where the controller keeps its CA, its own identity and the embedded database.
import { homedir } from "node:os";
import { join, resolve } from "node:path";

export interface HomePaths {
  root: string;
  caKey: string;
  caCert: string;
  /** Every CA peers are verified against (old and new during a rotation); absent: caCert. */
  caTrust: string;
  /** What follows a certificate of ours on the wire: the rollover link and the old root during
   *  and after a rotation; absent: caCert. */
  caChain: string;
  /** The CA being replaced, kept until `ca retire-old`. */
  caPreviousKey: string;
  caPreviousCert: string;
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
    caTrust: join(root, "ca", "trust.crt"),
    caChain: join(root, "ca", "chain.crt"),
    caPreviousKey: join(root, "ca", "previous.key"),
    caPreviousCert: join(root, "ca", "previous.crt"),
    key: join(root, "controller.key"),
    cert: join(root, "controller.crt"),
    config: join(root, "controller.json"),
    dbDir: join(root, "db"),
    lock: join(root, "db.lock"),
    socket: join(root, "controller.sock"),
  };
}
