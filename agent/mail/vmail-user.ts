// The system user that owns all mail files. Created once (system account, no login, no home
// made) and looked up by name afterwards; its uid/gid go into every lookup row.
import { readFileSync } from "node:fs";
import { runChecked, type RunOptions } from "../process.ts";

export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Look a user up in /etc/passwd (no NSS modules needed for system users the agent creates). */
export function lookupUser(name: string, passwd = "/etc/passwd"): SystemUser | undefined {
  for (const line of readFileSync(passwd, "utf8").split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  return undefined;
}

export function lookupGroupId(name: string, group = "/etc/group"): number | undefined {
  for (const line of readFileSync(group, "utf8").split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f.length >= 3) return Number(f[2]);
  }
  return undefined;
}

export async function ensureVmailUser(name = "vmail", run: RunOptions = {}): Promise<SystemUser> {
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(name)) throw new Error(`unsafe user name ${name}`);
  const found = lookupUser(name);
  if (found) return found;
  await runChecked(
    "useradd",
    [
      "--system",
      "--user-group",
      "--no-create-home",
      "--home-dir",
      "/nonexistent",
      "--shell",
      "/usr/sbin/nologin",
      name,
    ],
    run,
  );
  const made = lookupUser(name);
  if (!made) throw new Error(`useradd ${name} succeeded but the user is not in /etc/passwd`);
  return made;
}
