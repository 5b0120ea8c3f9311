// What GetInfo reports about the vnode: host, OS, init system, and the mail daemons' versions.
// Versions are asked of the daemons themselves (execFile, argument lists, short timeouts).
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { runProgram } from "../process.ts";

export type InitSystem = "systemd" | "openrc" | "direct";

export function detectInitSystem(probe: (path: string) => boolean = existsSync): InitSystem {
  if (probe("/run/systemd/system")) return "systemd";
  if (probe("/run/openrc") || probe("/sbin/openrc-run")) return "openrc";
  return "direct";
}

export function osRelease(): string {
  try {
    const text = readFileSync("/etc/os-release", "utf8");
    const field = (key: string): string => text.match(new RegExp(`^${key}="?([^"\\n]*)"?`, "m"))?.[1] ?? "";
    return `${field("ID")} ${field("VERSION_ID")}`.trim() || "unknown";
  } catch {
    return "unknown";
  }
}

async function run(file: string, args: string[]): Promise<string | undefined> {
  const r = await runProgram(file, args, { timeoutMs: 3000 });
  return r.code === 0 ? `${r.stdout}${r.stderr}`.trim() : undefined;
}

export interface DaemonVersion {
  name: string;
  installed: boolean;
  version: string;
}

export async function daemonVersions(): Promise<DaemonVersion[]> {
  const probes: Array<[string, string, string[], RegExp]> = [
    ["postfix", "/usr/sbin/postconf", ["-d", "-h", "mail_version"], /^(\S+)/],
    ["dovecot", "/usr/sbin/dovecot", ["--version"], /^(\S+)/],
    ["rspamd", "/usr/bin/rspamd", ["--version"], /(\d+\.\d+(?:\.\d+)?)/],
    ["clamav", "/usr/sbin/clamd", ["--version"], /ClamAV (\S+?)(?:\/|$)/],
  ];
  return Promise.all(
    probes.map(async ([name, file, args, pattern]) => {
      if (!existsSync(file)) return { name, installed: false, version: "" };
      const output = await run(file, args);
      return { name, installed: true, version: output?.match(pattern)?.[1] ?? "" };
    }),
  );
}

export function hostName(): string {
  return hostname();
}
