// The helper process of socket-table.ts: reads the kernel's unix socket table for serve, on each
// request over IPC, and exits when serve goes (the IPC channel closes). It loads nothing else:
// a bare Node process, so the fork each `ss` costs stays small whatever serve's heap.
import { readSocketTable } from "./socket-table.ts";

process.on("message", (message: unknown) => {
  if (message === null || typeof message !== "object") return;
  const id: unknown = Reflect.get(message, "id");
  if (typeof id !== "number") return;
  const withProcesses = Reflect.get(message, "withProcesses") === true;
  void readSocketTable(withProcesses).then((text) => {
    if (process.connected) process.send?.({ id, text }, (error: Error | null) => void error);
  });
});
process.on("disconnect", () => process.exit(0));
