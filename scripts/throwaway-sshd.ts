// A throwaway sshd on 127.0.0.1 for the benchmarks' "the NetServa way" side: fresh host and client
// keys, root by key only, everything in one directory. The caller waits for it and stops it.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface ThrowawaySshd {
  port: number;
  /** Client private key for `ssh -i`. */
  key: string;
  proc: ChildProcess;
}

export function spawnThrowawaySshd(dir: string, port: number): ThrowawaySshd {
  const keygen = (file: string): void => {
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file], { stdio: "ignore" });
    if (r.status !== 0) throw new Error(`ssh-keygen failed for ${file}`);
  };
  keygen(join(dir, "host_key"));
  keygen(join(dir, "client_key"));
  writeFileSync(join(dir, "authorized_keys"), readFileSync(join(dir, "client_key.pub")));
  writeFileSync(
    join(dir, "sshd_config"),
    [
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host_key")}`,
      "PermitRootLogin prohibit-password",
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "StrictModes no",
      `PidFile ${join(dir, "sshd.pid")}`,
      "UsePAM no",
      "PasswordAuthentication no",
      // Concurrent samples must not be throttled by sshd's own connection limits.
      "MaxStartups 100:30:200",
      "MaxSessions 100",
      "",
    ].join("\n"),
  );
  // sshd refuses to start without its privilege-separation directory, which only the host's
  // ssh service (stopped here, or never started on a fresh machine) would create.
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const proc = spawn("/usr/sbin/sshd", ["-D", "-f", join(dir, "sshd_config"), "-p", String(port)], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  return { port, key: join(dir, "client_key"), proc };
}
