// Small helpers for writing Rspamd's UCL safely. UCL expands $VAR inside strings and has its own
// escapes, so anything that is not a plain path or name is refused rather than escaped.
import { isAbsolute } from "node:path";
import { invalid } from "../../common/errors.ts";

// eslint-disable-next-line no-control-regex
const UNSAFE = /["\\$\u0000-\u001f\u007f]/;

/** A double-quoted UCL string; refuses quotes, backslashes, `$` and control characters. */
export function uclString(value: string, field: string): string {
  if (UNSAFE.test(value))
    throw invalid(field, `cannot contain quotes, backslashes, '$' or control characters: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

export type Listen =
  | { readonly kind: "unix"; readonly path: string }
  | { readonly kind: "inet"; readonly host: string; readonly port: number };

/** "/abs/path.sock" or "host:port" / "[v6]:port". Port 0 is refused: nobody could find the port. */
export function parseListen(value: string, field: string): Listen {
  if (isAbsolute(value)) {
    uclString(value, field);
    // sockaddr_un holds 108 bytes including the NUL.
    if (Buffer.byteLength(value) > 107) throw invalid(field, "unix socket path longer than 107 bytes");
    return { kind: "unix", path: value };
  }
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535))
    throw invalid(field, "must be an absolute unix socket path or host:port with port 1-65535");
  return { kind: "inet", host: m[1] ?? m[2] ?? "", port };
}

/** Rspamd's bind_socket value: "host:port" or "/path mode=0NNN owner=user". */
export function bindSocket(
  value: string,
  field: string,
  unix: { mode: string; owner?: string; group?: string } = { mode: "0600" },
): string {
  const l = parseListen(value, field);
  if (l.kind === "inet") return `"${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port}"`;
  for (const [name, v] of [
    ["owner", unix.owner],
    ["group", unix.group],
  ] as const)
    if (v !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(v))
      throw invalid(field, `bad ${name} ${JSON.stringify(v)}`);
  // Rspamd applies the tokens in order: owner= sets the user's own group, so group= comes after.
  const owner = unix.owner === undefined ? "" : ` owner=${unix.owner}`;
  const group = unix.group === undefined ? "" : ` group=${unix.group}`;
  return uclString(`${l.path} mode=${unix.mode}${owner}${group}`, field);
}

export const GENERATED = "# Rendered by the netserva-mail agent: changes here are overwritten.\n";
