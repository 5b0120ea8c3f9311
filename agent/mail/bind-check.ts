// Before a listener change goes live: can the mail daemons bind the new addresses at all? Postfix
// only rebinds on a stop and start, so a port another process holds on a new address used to
// cost a restart onto the new config (the master exits on the bind error) and a restart back, at
// every retry of the refused generation. The agent runs in the daemons' network namespace and as
// root: it binds each new (address, port) itself for an instant and refuses the change, naming
// the address, before any file is written or any daemon touched.
import { createServer } from "node:net";
import { NetservaError } from "../../common/errors.ts";
import { MAIL_LISTENERS } from "./listener-probes.ts";

/** The explicit addresses of Postfix's inet_interfaces in a main.cf; undefined: all (or a name). */
export function postfixListenAddresses(mainCf: string | undefined): string[] | undefined {
  if (mainCf === undefined) return undefined;
  let value = "all";
  for (const l of mainCf.split("\n")) {
    const m = /^\s*inet_interfaces\s*=\s*(.*?)\s*$/.exec(l);
    if (m) value = m[1] ?? "";
  }
  const addresses = value.split(/[\s,]+/).filter((a) => a !== "");
  return addresses.length > 0 && addresses.every((a) => /^[0-9a-f.:]+$/i.test(a)) ? addresses : undefined;
}

/** Bind `host:port` for an instant: undefined when it could, else why not (the OS's words). */
export function tryBind(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", (err: NodeJS.ErrnoException) =>
      resolve(err.code === "EADDRINUSE" ? "Address already in use" : err.message),
    );
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

/**
 * Refuses (failed_precondition, as a checker would) when a mail port on an address the new
 * config adds cannot be bound. Only explicit lists on both sides are compared: with `all` on
 * either side the running daemons' own sockets would look taken.
 */
export async function checkNewListeners(
  before: readonly string[] | undefined,
  after: readonly string[],
  bind: (host: string, port: number) => Promise<string | undefined> = tryBind,
): Promise<void> {
  if (before === undefined || after.length === 0) return;
  const added = after.filter((a) => !before.includes(a));
  const problems: string[] = [];
  for (const host of added)
    for (const l of MAIL_LISTENERS) {
      const why = await bind(host, l.port);
      if (why) problems.push(`bind ${host} port ${l.port} (${l.daemon} ${l.name}): ${why}`);
    }
  if (problems.length > 0)
    throw new NetservaError(
      "failed_precondition",
      `config refused at bind check; previous config kept, no daemon restarted: ${problems.join("; ")}`,
    );
}
