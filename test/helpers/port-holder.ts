// Another process holding a TCP port inside a test namespace, as a stray daemon would: it answers
// every connection with one line and closes it. Released (or cleaned up) by its PID.
import { spawn } from "node:child_process";
import type { TestNetns } from "./netns.ts";

export interface PortHolder {
  readonly pid: number;
  release(): Promise<void>;
}

const SCRIPT = `
const [address, port] = process.argv.slice(1);
require("node:net")
  .createServer((s) => { s.on("error", () => {}); s.end("holder: not a mail daemon\\r\\n"); })
  .on("error", (e) => { console.error(e.message); process.exit(1); })
  .listen(Number(port), address, () => console.log("listening"));
`;

export async function holdPort(ns: TestNetns, address: string, port: number): Promise<PortHolder> {
  // `ip netns exec` execs the program in place: the child's PID is the holder's.
  const child = spawn("ip", ["netns", "exec", ns.name, process.execPath, "-e", SCRIPT, address, String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      if (d.toString().includes("listening")) resolve();
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`port holder on ${address}:${port} exited ${code}: ${err}`)));
  });
  const pid = child.pid ?? 0;
  return {
    pid,
    release: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        process.kill(pid, "SIGKILL");
      }),
  };
}
