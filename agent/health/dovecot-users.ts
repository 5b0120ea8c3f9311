// Dovecot's logged-in users, from `doveadm -c FILE who -1` (one line per connection; the config
// file points doveadm at this instance's anvil socket, not the host's).
import { runChecked } from "../process.ts";

export async function dovecotUsers(o: {
  dovecotConf: string;
  timeoutMs: number;
}): Promise<{ users: number; connections: number }> {
  const { stdout: text } = await runChecked("/usr/bin/doveadm", ["-c", o.dovecotConf, "who", "-1"], {
    timeoutMs: o.timeoutMs,
    maxBuffer: 64 << 20,
  });
  const lines = text.split("\n").filter((l) => l.trim() && !/^username\s/.test(l));
  const users = new Set(lines.map((l) => l.split(/\s+/)[0]));
  return { users: users.size, connections: lines.length };
}
