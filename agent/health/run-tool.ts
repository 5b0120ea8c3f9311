// Runs a daemon's own tool (postqueue, doveadm) with an argument list and a deadline; no shell.
import { execFile } from "node:child_process";

export function runTool(file: string, args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error)
        reject(
          new Error(
            `${file} ${args[0] ?? ""}: ${error.killed ? `timeout after ${timeoutMs} ms` : stderr.trim() || error.message}`,
          ),
        );
      else resolve(stdout);
    });
  });
}
