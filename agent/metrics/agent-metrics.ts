// The agent's Prometheus metrics. One registry per agent (tests run several in one process).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { LastResortKind } from "../../common/process/last-resort.ts";

export interface AgentMetrics {
  readonly registry: Registry;
  commandDone(command: string, result: "ok" | "error" | "replayed" | "refused", seconds: number): void;
  setCertificateExpiry(notAfter: Date): void;
  setAppliedGeneration(generation: number): void;
  /** The process-level last resort caught something a connection's own handler missed. */
  lastResort(kind: LastResortKind): void;
}

export function createAgentMetrics(options: { vnode: string; version: string }): AgentMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ vnode: options.vnode });
  collectDefaultMetrics({ register: registry });
  // These gauges end in _total, which `promtool check metrics` rejects as non-counters.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"])
    registry.removeSingleMetric(name);

  new Gauge({ name: "netserva_agent_up", help: "1 while the agent serves commands.", registers: [registry] }).set(1);
  new Gauge({
    name: "netserva_agent_build_info",
    help: "Agent build information; the value is always 1.",
    labelNames: ["version", "node_version"],
    registers: [registry],
  }).set({ version: options.version, node_version: process.versions.node }, 1);
  const commands = new Counter({
    name: "netserva_agent_commands_total",
    help: "Commands handled, by command and result.",
    labelNames: ["command", "result"],
    registers: [registry],
  });
  const durations = new Histogram({
    name: "netserva_agent_command_duration_seconds",
    help: "Time spent handling a command, by command.",
    labelNames: ["command"],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const certificateExpiry = new Gauge({
    name: "netserva_agent_certificate_expiry_timestamp_seconds",
    help: "Unix time at which the agent's certificate expires.",
    registers: [registry],
  });
  const generation = new Gauge({
    name: "netserva_agent_applied_generation",
    help: "Desired-state generation last applied on this vnode.",
    registers: [registry],
  });

  const lastResort = new Counter({
    name: "netserva_agent_last_resort_total",
    help: "Errors caught by the process-level last resort (a connection's own handler missed them); should stay 0.",
    labelNames: ["kind"],
    registers: [registry],
  });
  // Present at 0 from the start, so an alert on any increase needs no absent() guard.
  for (const kind of ["uncaught_exception", "unhandled_rejection"]) lastResort.inc({ kind }, 0);

  const counterChildren = new Map<string, ReturnType<typeof commands.labels>>();
  const histogramChildren = new Map<string, ReturnType<typeof durations.labels>>();
  return {
    registry,
    commandDone(command, result, seconds) {
      // Bound label children, cached: label hashing on every call costs more than a Ping.
      const key = `${command}\u0000${result}`;
      let counter = counterChildren.get(key);
      if (!counter) counterChildren.set(key, (counter = commands.labels(command, result)));
      let histogram = histogramChildren.get(command);
      if (!histogram) histogramChildren.set(command, (histogram = durations.labels(command)));
      counter.inc();
      histogram.observe(seconds);
    },
    setCertificateExpiry: (notAfter) => certificateExpiry.set(Math.floor(notAfter.getTime() / 1000)),
    setAppliedGeneration: (value) => generation.set(value),
    lastResort: (kind) => lastResort.inc({ kind }),
  };
}
