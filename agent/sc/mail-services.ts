// Service definitions of Postfix and Dovecot for one vnode root.
//
// Unit mapping: root "/" uses the stock units (postfix.service / dovecot.service, OpenRC
// "postfix" / "dovecot"). A private root maps to template units the operator installs,
// netserva-postfix@<escaped root>.service and netserva-dovecot@<escaped root>.service, whose
// ExecStart lines are the same direct commands as below (OpenRC: postfix.<instance>).
import type { VnodePaths } from "../paths.ts";
import type { CommandServiceDefinition, ServiceDefinition } from "./service-definition.ts";
import { socketAnswers } from "../process.ts";

/** systemd-escape --path for a root such as /srv/vnode1 → "srv-vnode1" (enough for our names). */
export function escapeRoot(root: string): string {
  return root
    .replace(/^\/+|\/+$/g, "")
    .replace(/[^A-Za-z0-9:_./]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)
    .replace(/\//g, "-");
}

function units(
  name: string,
  paths: VnodePaths,
): Pick<ServiceDefinition, "systemdUnit" | "systemdStatusUnit" | "openrcService"> {
  if (paths.isSystemRoot) {
    // Debian runs Postfix as postfix@-.service (its main instance) under the postfix.service oneshot.
    const status = name === "postfix" ? { systemdStatusUnit: "postfix@-.service" } : {};
    return { systemdUnit: `${name}.service`, ...status, openrcService: name };
  }
  return {
    systemdUnit: `netserva-${name}@${escapeRoot(paths.root)}.service`,
    openrcService: `${name}.${paths.dovecotInstanceName}`,
  };
}

export function postfixService(paths: VnodePaths): CommandServiceDefinition {
  const c = ["-c", paths.postfixDir];
  return {
    name: "postfix",
    direct: {
      start: { file: "postfix", args: [...c, "start"] },
      reload: { file: "postfix", args: [...c, "reload"] },
      stop: { file: "postfix", args: [...c, "stop"] },
      pidFile: paths.postfixPidFile,
    },
    ...units("postfix", paths),
  };
}

export function dovecotService(paths: VnodePaths): CommandServiceDefinition {
  const c = ["-c", paths.dovecotConf];
  return {
    name: "dovecot",
    direct: {
      start: { file: "dovecot", args: c },
      reload: { file: "doveadm", args: [...c, "reload"] },
      stop: { file: "doveadm", args: [...c, "stop"] },
      pidFile: paths.dovecotPidFile,
      // Up means LMTP greets: that is what Postfix delivers through.
      ready: () => socketAnswers(paths.dovecotLmtpSocket, "220"),
    },
    ...units("dovecot", paths),
  };
}
