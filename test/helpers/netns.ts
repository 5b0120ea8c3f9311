// Network namespaces for tests: each vnode gets its own namespace joined to the host by a veth
// pair in 10.251.0.0/16, so daemons bind real ports without touching the host's. Traffic goes
// only to addresses created here. Names carry the creating PID, so leftovers of crashed runs
// (their PID is gone) are removed on the next run, and parallel test files never collide.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const exec = promisify(execFile);
const PREFIX = "nsmail";
let counter = 0;

export interface TestNetns {
  readonly name: string;
  /** Host side of the veth pair. */
  readonly hostAddress: string;
  /** Address inside the namespace: daemons listen here. */
  readonly nsAddress: string;
  /** Command prefix that runs a program inside the namespace. */
  readonly wrap: readonly string[];
  run(file: string, args: readonly string[]): Promise<{ stdout: string; stderr: string }>;
  /** PIDs of every process living in the namespace. */
  pids(): Promise<number[]>;
  destroy(): Promise<void>;
}

const ip = (...args: string[]) => exec("ip", args, { timeout: 10_000 });

async function killNamespace(name: string): Promise<void> {
  const { stdout } = await ip("netns", "pids", name).catch(() => ({ stdout: "" }));
  for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await ip("netns", "del", name).catch(() => undefined);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Remove namespaces of earlier runs whose creating process is dead. */
export async function removeStaleNamespaces(): Promise<string[]> {
  const { stdout } = await ip("netns", "list");
  const stale = stdout
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith(`${PREFIX}-`))
    .filter((n) => !alive(Number(n.split("-")[2])));
  for (const n of stale) await killNamespace(n);
  return stale;
}

async function freeSubnet(): Promise<number> {
  const { stdout } = await ip("-o", "-4", "addr", "show");
  for (let tries = 0; tries < 200; tries++) {
    const block = Math.floor(Math.random() * 16384) * 4; // a /30 inside 10.251.0.0/16
    const host = `10.251.${block >> 8}.${(block & 255) + 1}/`;
    if (!stdout.includes(host)) return block;
  }
  throw new Error("no free /30 in 10.251.0.0/16");
}

export async function createTestNetns(tag: string): Promise<TestNetns> {
  if (!/^[a-z0-9]{1,12}$/.test(tag)) throw new Error(`bad netns tag ${tag}`);
  await removeStaleNamespaces();
  const n = counter++;
  const name = `${PREFIX}-${tag}-${process.pid}-${n}`;
  const vethHost = `nm${process.pid % 1_000_000}x${n}h`;
  const vethNs = `nm${process.pid % 1_000_000}x${n}n`;
  const block = await freeSubnet();
  const a = (i: number): string => `10.251.${block >> 8}.${(block & 255) + i}`;
  const wrap = ["ip", "netns", "exec", name];
  await ip("netns", "add", name);
  try {
    await ip("link", "add", vethHost, "type", "veth", "peer", "name", vethNs);
    await ip("link", "set", vethNs, "netns", name);
    await ip("addr", "add", `${a(1)}/30`, "dev", vethHost);
    await ip("link", "set", vethHost, "up");
    await exec("ip", ["netns", "exec", name, "ip", "addr", "add", `${a(2)}/30`, "dev", vethNs]);
    await exec("ip", ["netns", "exec", name, "ip", "link", "set", vethNs, "up"]);
    await exec("ip", ["netns", "exec", name, "ip", "link", "set", "lo", "up"]);
  } catch (err) {
    await killNamespace(name);
    throw err;
  }
  return {
    name,
    hostAddress: a(1),
    nsAddress: a(2),
    wrap,
    run: (file, args) => exec("ip", ["netns", "exec", name, file, ...args], { timeout: 30_000 }),
    async pids() {
      const { stdout } = await ip("netns", "pids", name).catch(() => ({ stdout: "" }));
      return stdout.split(/\s+/).filter(Boolean).map(Number);
    },
    destroy: () => killNamespace(name),
  };
}
