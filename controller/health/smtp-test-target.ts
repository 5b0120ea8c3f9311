// Where `mail:test-smtp` connects for a vnode: its first mail listen address, else the host of
// its agent address; the certificate must name the vnode's mail host name.
import { invalid } from "../../common/errors.ts";
import type { TlsMode } from "../../common/smtp-probe/run-smtp-test.ts";
import type { Vnode } from "../db/entities/index.ts";

export interface SmtpTarget {
  host: string;
  port: number;
  tlsMode: TlsMode;
  serverName: string;
}

export function smtpTarget(
  vnode: Pick<Vnode, "name" | "address" | "mailHostname" | "mailListen">,
  o: { host?: string; port?: string; tls?: string },
): SmtpTarget {
  const port = Number(o.port ?? "25");
  if (![25, 465, 587].includes(port)) throw invalid("port", "must be 25, 465 or 587");
  const tlsMode = (o.tls ?? (port === 465 ? "implicit" : "starttls")) as TlsMode;
  if (!["starttls", "implicit", "none"].includes(tlsMode)) throw invalid("tls", "must be starttls, implicit or none");
  const listen = (vnode.mailListen ?? []).find((a) => a !== "" && a !== "0.0.0.0" && a !== "::");
  const agentHost = vnode.address.startsWith("[")
    ? vnode.address.slice(1, vnode.address.indexOf("]"))
    : vnode.address.slice(0, vnode.address.lastIndexOf(":"));
  return { host: o.host ?? listen ?? agentHost, port, tlsMode, serverName: vnode.mailHostname ?? vnode.name };
}
