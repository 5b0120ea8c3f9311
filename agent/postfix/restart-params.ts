// `postfix reload` does not rebind listeners: a changed inet_interfaces or inet_protocols is
// ignored until a stop and start ("to change inet_interfaces, stop and start Postfix"). Taking
// over a stock Postfix (inet_interfaces = all, inet_protocols = all) with a main.cf that listens
// on the vnode's addresses over IPv4 must therefore restart it: a reload left the old IPv6
// listeners under the new protocol setting and the master died (`fatal: :::submission: Address
// family for hostname not supported`).

/** Parameters a running Postfix only picks up on a restart. */
const RESTART_PARAMS = ["inet_interfaces", "inet_protocols"] as const;

/** The value main.cf gives a parameter (the last assignment wins, as in Postfix), else its default. */
function paramValue(mainCf: string, name: string): string {
  let value = "all";
  const line = new RegExp(`^\\s*${name}\\s*=\\s*(.*?)\\s*$`);
  for (const l of mainCf.split("\n")) {
    const m = line.exec(l);
    if (m) value = (m[1] ?? "").replace(/[\s,]+/g, " ");
  }
  return value;
}

/** True when going from `before` to `after` (main.cf contents) needs a stop and start, not a reload. */
export function postfixNeedsRestart(before: string | undefined, after: string | undefined): boolean {
  if (before === undefined || after === undefined) return false;
  return RESTART_PARAMS.some((p) => paramValue(before, p) !== paramValue(after, p));
}
