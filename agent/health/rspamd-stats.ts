// Rspamd's own counters from its controller worker's /stat (over the unix socket the agent
// rendered): messages scanned, ham/spam and per action.
import { request } from "node:http";

export interface RspamdCounts {
  scanned: number;
  ham: number;
  spam: number;
  rejected: number;
  greylisted: number;
  addHeader: number;
}

export function rspamdStats(o: { socketPath: string; timeoutMs: number }): Promise<RspamdCounts> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: o.socketPath, path: "/stat", method: "GET", timeout: o.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        try {
          if (res.statusCode !== 200) throw new Error(`rspamd /stat answered ${res.statusCode ?? 0}`);
          const s = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
            scanned?: number;
            ham_count?: number;
            spam_count?: number;
            actions?: Record<string, number>;
          };
          const a = s.actions ?? {};
          resolve({
            scanned: s.scanned ?? 0,
            ham: s.ham_count ?? 0,
            spam: s.spam_count ?? 0,
            rejected: a["reject"] ?? 0,
            greylisted: a["greylist"] ?? 0,
            addHeader: a["add header"] ?? 0,
          });
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`rspamd /stat: timeout after ${o.timeoutMs} ms`)));
    req.on("error", reject);
    req.end();
  });
}
