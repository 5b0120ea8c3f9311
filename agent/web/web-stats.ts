// What the agent's web listeners did, for the health report and metrics: requests by kind (what
// was asked for) and result (status class), and TLS handshakes that failed. Plain counters kept
// for the agent's lifetime; a restart starts them again (Prometheus sees a counter reset).
import { AUTOCONFIG_PATHS, AUTODISCOVER_PATHS, MTA_STS_PATH } from "./served-site.ts";

export type WebRequestKind = "mta-sts" | "autoconfig" | "autodiscover" | "acme-challenge" | "other";

export interface WebStats {
  request(kind: WebRequestKind, status: number): void;
  tlsFailure(): void;
  requests(): Array<{ kind: string; result: string; count: number }>;
  tlsFailures(): number;
}

/** The kind of an HTTPS request, from its path (the paths served-site.ts answers). */
export function kindOfPath(path: string): WebRequestKind {
  if (path === MTA_STS_PATH) return "mta-sts";
  if (AUTOCONFIG_PATHS.includes(path)) return "autoconfig";
  if (AUTODISCOVER_PATHS.includes(path)) return "autodiscover";
  return "other";
}

export function createWebStats(): WebStats {
  const counts = new Map<string, number>();
  let tls = 0;
  return {
    request(kind, status) {
      const key = `${kind} ${Math.floor(status / 100)}xx`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    },
    tlsFailure: () => void (tls += 1),
    requests: () =>
      [...counts].map(([key, count]) => {
        const [kind = "", result = ""] = key.split(" ");
        return { kind, result, count };
      }),
    tlsFailures: () => tls,
  };
}
